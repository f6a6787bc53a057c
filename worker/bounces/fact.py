"""One recipient's failure as read from a bounce, before a reason is decided."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ADDRESS = re.compile(
    r"""(?:"[^"\r\n]{1,64}"|[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]{1,64})@"""
    r"""[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}\.)+[A-Za-z0-9\-]{1,62}""")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_REPLY = re.compile(r"(?<![\d.\-])([245][0-7]\d)(?:[ \-]|$)")


@dataclass
class Fact:
    """What a bounce says about one recipient (all fields optional)."""

    recipient: str | None = None
    action: str = ""  # DSN Action: failed, delayed, delivered, relayed, expanded, …
    status: str = ""  # enhanced status such as 5.1.1
    diagnostic: str = ""  # unfolded diagnostic text
    diagnostic_type: str = ""  # "SMTP", "X-UNIX", … from Diagnostic-Code
    reply_code: int | None = None
    command: str = ""  # SMTP command the reply answered: HELO, EHLO, MAIL, RCPT, DATA, …
    remote_mta: str = ""
    context: str = ""  # human-readable text about this recipient, matched with the diagnostic
    reason: str = ""  # set by a format-specific detector when it knows better


def canonical_address(text: str | None) -> str | None:
    """The first address in ``text``: angle brackets and quotes removed, domain lower-cased."""
    if not text:
        return None
    match = _ADDRESS.search(text)
    if not match:
        return None
    local, _, domain = match.group(0).rpartition("@")
    local = local.strip()
    if len(local) >= 2 and local[0] == '"' and local[-1] == '"':
        local = local[1:-1]
    local = local.lstrip(".") if local.startswith("..") else local
    return f"{local}@{domain.rstrip('.').lower()}"


def all_addresses(text: str) -> list[str]:
    """Every address in ``text``, canonical, in order of first appearance."""
    seen: list[str] = []
    for match in _ADDRESS.finditer(text or ""):
        addr = canonical_address(match.group(0))
        if addr and addr not in seen:
            seen.append(addr)
    return seen


def find_status(text: str) -> str:
    """The first specific (not x.0.0) enhanced status code in ``text``, else the first, else ""."""
    found = [".".join(m.groups()) for m in _STATUS.finditer(text or "")]
    specific = [code for code in found if not code.endswith(".0.0")]
    return (specific or found or [""])[0]


def find_reply_code(text: str) -> int | None:
    """The first SMTP reply code (2xx/4xx/5xx) at a word start in ``text``."""
    for match in _REPLY.finditer(text or ""):
        return int(match.group(1))
    return None


def unfold(text: str) -> str:
    """Collapse all whitespace runs into one space."""
    return " ".join((text or "").split())


_CONTINUATION = re.compile(r"^\s*([245]\d\d)([ \-])(?:([245]\.\d{1,3}\.\d{1,3})\s)?")


def join_reply_lines(text: str) -> str:
    """A multi-line SMTP reply as one sentence: drop the repeated ``550-5.2.1`` prefixes.

    ``550-5.2.1 The user is receiving mail at a rate that 550-5.2.1 prevents additional``
    becomes ``550-5.2.1 The user is receiving mail at a rate that prevents additional``, so
    phrases split across reply lines can be found.
    """
    match = _CONTINUATION.match(text or "")
    if not match:
        return text or ""
    code, status = match.group(1), match.group(3)
    head, rest = text[:match.end()], text[match.end():]
    marker = rf"\s{code}[ \-]" + (rf"(?:{re.escape(status)}\s)?" if status else "")
    return head + re.sub(marker, " ", rest)
