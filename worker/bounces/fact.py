"""One recipient's failure as read from a bounce, before a reason is decided."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every domain label is non-empty: "user@example.net...User account" ends at ".net".
_ADDRESS = re.compile(
    r"""(?:"[^"\r\n]{1,64}"|[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]{1,64})@"""
    r"""(?:[A-Za-z0-9][A-Za-z0-9\-]{0,62}\.)+[A-Za-z0-9][A-Za-z0-9\-]{0,61}""")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
#: What may stand just before a version number, never before an enhanced status code:
#: "X-Mailman-Version: 2.1.5", "Mailman 2.0.12", "v5.1.1", "release 4.2.1", "192.5.1.1".
_VERSION_BEFORE = re.compile(r"(?i)(?:(?:version:?|ver\.?|\bv|release|build|mailman)\s*|[\d./])$")
#: Exchange writes an address as "SMTP=taro@example.jp" or "SMTP:taro@…" in X.400 lines.
_ADDRESS_TYPE = re.compile(r"(?i)^(?:smtp|rfc822|internet)[=:]")
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
    original_recipient: str | None = None  # DSN Original-Recipient when it differs


def canonical_address(text: str | None) -> str | None:
    """The first address in ``text``: angle brackets and quotes removed, domain lower-cased."""
    if not text:
        return None
    match = _ADDRESS.search(text)
    if not match:
        return None
    local, _, domain = match.group(0).rpartition("@")
    local = _ADDRESS_TYPE.sub("", local.strip())
    if len(local) >= 2 and local[0] == '"' and local[-1] == '"':
        local = local[1:-1]
    elif local.startswith("'") and "'" not in local[1:]:
        local = local[1:]  # "addressed to 'taro@example.jp'": the quote is prose, not the address
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


def _is_status(text: str, match: re.Match[str]) -> bool:
    """Whether a ``d.d.d`` match is a status code and not a version number or an IP part."""
    after = text[match.end():match.end() + 2]
    if after[:1] == "." and after[1:2].isdigit():
        return False  # 5.1.1.4, 2.1.5.1: a longer dotted number
    return not _VERSION_BEFORE.search(text[max(0, match.start() - 12):match.start()])


def addresses_at(text: str) -> list[tuple[str, int]]:
    """Every address in ``text`` with the offset where it starts (canonical, repeats kept)."""
    out: list[tuple[str, int]] = []
    for match in _ADDRESS.finditer(text or ""):
        addr = canonical_address(match.group(0))
        if addr:
            out.append((addr, match.start()))
    return out


def find_status(text: str) -> str:
    """The first specific (not x.0.0) enhanced status code in ``text``, else the first, else "".

    Version numbers ("Mailman 2.1.5", "X-Mailman-Version: 2.1.15") are not status codes.
    """
    text = text or ""
    found = [".".join(m.groups()) for m in _STATUS.finditer(text) if _is_status(text, m)]
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
