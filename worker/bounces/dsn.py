"""RFC 3464 delivery status notifications: message/delivery-status fields to facts."""

from __future__ import annotations

import re

from .fact import Fact, canonical_address, find_reply_code, find_status, unfold

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")

#: Fields that belong to a recipient block (RFC 3464 §2.3 and common X- extensions).
RECIPIENT_FIELDS = frozenset({
    "original-recipient", "final-recipient", "action", "status", "remote-mta",
    "diagnostic-code", "last-attempt-date", "final-log-id", "will-retry-until",
    "x-actual-recipient", "x-supplementary-info", "x-display-name",
})


def fields(text: str) -> list[tuple[str, str]]:
    """`Name: value` pairs in order, continuation lines unfolded into the value."""
    out: list[tuple[str, str]] = []
    for line in (text or "").split("\n"):
        if line[:1] in (" ", "\t") and out:
            name, value = out[-1]
            out[-1] = (name, value + " " + line.strip())
            continue
        match = _FIELD.match(line.strip())
        if match:
            out.append((match.group(1).lower(), match.group(2).strip()))
        elif line.strip() and out and out[-1][0] == "diagnostic-code":
            # A multi-line SMTP reply whose continuation lines are not indented.
            name, value = out[-1]
            out[-1] = (name, value + " " + line.strip())
    return out


def parse(text: str) -> tuple[dict[str, str], list[Fact]]:
    """Parse delivery-status text into (per-message fields, one Fact per recipient)."""
    message: dict[str, str] = {}
    facts: list[Fact] = []
    current: Fact | None = None
    seen: set[str] = set()

    def start() -> Fact:
        nonlocal current, seen
        current = Fact()
        facts.append(current)
        seen = set()
        return current

    previous = ""
    for name, value in fields(text):
        if name not in RECIPIENT_FIELDS:
            message.setdefault(name, value)
            continue
        pair = previous in ("final-recipient", "original-recipient") and previous != name
        previous = name
        if name in ("final-recipient", "original-recipient"):
            address = canonical_address(value.split(";", 1)[-1])
            # A new block starts with a second Final-/Original-Recipient, or with another
            # address after this block's Action/Status/Diagnostic-Code (blank line lost).
            # Amazon SES writes Action first, then Final- and Original-Recipient; an
            # Original- and Final-Recipient written one after the other are one block.
            if current is None or name in seen or (
                    not pair and current.recipient is not None and address != current.recipient
                    and seen & {"action", "status", "diagnostic-code"}):
                start()
            assert current is not None
            if name == "original-recipient" and address:
                current.original_recipient = address
            if name == "final-recipient" or current.recipient is None:
                current.recipient = address or current.recipient
            seen.add(name)
            continue
        if current is None or name in seen and name in ("action", "status", "diagnostic-code"):
            start()
        assert current is not None
        seen.add(name)
        if name == "action":
            current.action = value.split()[0].lower() if value.split() else ""
        elif name == "status":
            current.status = find_status(value)
            if current.status.endswith(".0.0") and find_status(current.diagnostic)[1:] not in ("", ".0.0"):
                current.status = current.status[0] + find_status(current.diagnostic)[1:]
        elif name == "remote-mta":
            current.remote_mta = value.split(";", 1)[-1].strip().lower()
        elif name == "diagnostic-code":
            kind, _, rest = value.partition(";")
            if rest or kind.strip().upper() in ("SMTP", "X-UNIX", "X-POSTFIX", "X-LOCAL"):
                kind = kind.strip().upper()
                # Postfix writes its own findings (DNS, connection) as X-Postfix.
                current.diagnostic_type = kind if kind.startswith("X-UNIX") else "SMTP"
                current.diagnostic = unfold(rest)
            else:
                current.diagnostic = unfold(value)
            current.reply_code = find_reply_code(current.diagnostic)
            specific = find_status(current.diagnostic)
            if not current.status or (current.status.endswith(".0.0") and specific
                                      and not specific.endswith(".0.0")
                                      and specific[0] == current.status[0]):
                current.status = specific or current.status
        elif name == "x-actual-recipient" and current.recipient is None:
            current.recipient = canonical_address(value.split(";", 1)[-1])
    return message, [f for f in facts if f.recipient or f.status or f.diagnostic]
