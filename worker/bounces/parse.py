"""Lenient MIME reading for bounce mails: never raises, always returns text.

Bounce mails are often broken: charsets are mislabelled (ISO-2022-JP that is really
EUC-JP, Shift_JIS or UTF-8), base64 is truncated, MIME boundaries are missing, and the
returned original message may be inline text.  :func:`load` turns any bytes into a
:class:`ParsedMail` whose fields are plain ``str`` with LF line endings.
"""

from __future__ import annotations

import email
import email.message
import re
from dataclasses import dataclass, field

from .charsets import decode_bytes, decode_header_value, surrogate_bytes

#: Bounces larger than this are cut; everything we need is near the top.
MAX_BYTES = 2 * 1024 * 1024
#: Text kept per MIME part.
MAX_PART_CHARS = 200_000


@dataclass
class ParsedMail:
    """The parts of a mail a bounce classifier looks at, as decoded text."""

    headers: dict[str, str] = field(default_factory=dict)  # lower-case name -> first value
    content_type: str = ""
    report_type: str = ""
    body: str = ""  # human-readable bounce text (original message removed when found)
    dsn: str = ""  # message/delivery-status blocks, "Field: value" lines, blocks split by a blank line
    feedback: str = ""  # message/feedback-report fields
    original: str = ""  # headers (and start) of the returned original message
    part_types: list[str] = field(default_factory=list)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def _fields_text(msg: email.message.Message) -> str:
    lines = []
    for name, value in msg.items():
        lines.append(f"{name}: {decode_header_value(value)}")
    return "\n".join(lines)


def _part_bytes(part: email.message.Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    if isinstance(raw, str):
        return surrogate_bytes(raw)
    return b""


def _part_text(part: email.message.Message) -> str:
    data = _part_bytes(part)[: MAX_PART_CHARS * 2]
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    text = decode_bytes(data, charset).replace("\r\n", "\n").replace("\r", "\n")
    if part.get_content_subtype() == "html":
        text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>", "\n", text)
        text = re.sub(r"<[^>]*>", " ", text)
        text = re.sub(r"&nbsp;", " ", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text[:MAX_PART_CHARS]


def _blocks_text(part: email.message.Message) -> str:
    """message/delivery-status (or feedback-report) as text, whatever the parser made of it."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = []
        for block in payload:
            if not isinstance(block, email.message.Message):
                continue
            text = _fields_text(block)
            rest = block.get_payload()
            if isinstance(rest, str) and rest.strip():
                # A continuation line without indentation ends the parser's header block;
                # the remaining fields of that block end up in its "body".
                rest = decode_bytes(surrogate_bytes(rest)).replace("\r\n", "\n")
                text += "\n" + rest.strip("\n")
            blocks.append(text)
        return "\n\n".join(blocks)
    return _part_text(part)


def _walk(part: email.message.Message, out: ParsedMail, depth: int = 0) -> None:
    if depth > 20:
        return
    try:
        ctype = part.get_content_type()
    except Exception:  # noqa: BLE001
        ctype = "text/plain"
    out.part_types.append(ctype)
    if ctype in ("message/delivery-status", "message/global-delivery-status"):
        out.dsn += _blocks_text(part) + "\n\n"
        return
    if ctype == "message/feedback-report":
        out.feedback += _blocks_text(part) + "\n\n"
        return
    if ctype in ("message/rfc822", "message/global", "message/partial", "text/rfc822-headers",
                 "message/rfc822-headers", "message/global-headers"):
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
            inner = payload[0]
            if inner.get_content_type() == "multipart/report" and not out.dsn:
                _walk(inner, out, depth + 1)  # a gateway forwarded the real DSN as an attachment
                return
            out.original += _fields_text(inner) + "\n\n"
        else:
            out.original += _part_text(part) + "\n\n"
        return
    if part.is_multipart() or ctype.startswith("multipart/"):
        payload = part.get_payload()
        if isinstance(payload, list) and payload:
            for sub in payload:
                if isinstance(sub, email.message.Message):
                    _walk(sub, out, depth + 1)
            return
        repaired = _repair_multipart(payload) if isinstance(payload, str) else None
        if repaired is not None:
            _walk(repaired, out, depth + 1)
        else:
            out.body += _part_text(part) + "\n"
        return
    if ctype.startswith("text/") or ctype in ("application/octet-stream",) and depth == 0:
        out.body += _part_text(part) + "\n"


_BOUNDARY_LINE = re.compile(r"^--([^\s]{6,}?)(?:--)?[ \t]*$", re.MULTILINE)


def _repair_multipart(payload: str) -> email.message.Message | None:
    """Re-read a multipart body whose declared boundary is wrong or missing."""
    counts: dict[str, int] = {}
    for match in _BOUNDARY_LINE.finditer(payload):
        counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    if not counts:
        return None
    boundary = max(counts, key=lambda b: counts[b])
    if counts[boundary] < 2 or '"' in boundary:
        return None
    head = f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
    try:
        repaired = email.message_from_bytes(surrogate_bytes(head + payload))
    except Exception:  # noqa: BLE001
        return None
    inner = repaired.get_payload()
    return repaired if isinstance(inner, list) and inner else None


# Lines that start the returned original message inside plain text.
_MARKER_WORDS = (
    r"original message|copy of (?:the|your) (?:original )?message|returned message|unsent message|"
    r"message text|headers? of (?:the )?(?:original|returned)|original message header|"
    r"included message|message header follows|header of the original|元のメッセージ|元メッセージ|"
    r"送信メール|原文"
)
_ORIGINAL_MARKER = re.compile(
    r"^[ \t>]*(?:(?:-{2,}|={2,}|_{2,}|\*{2,}).*(?:" + _MARKER_WORDS + r")"
    r"|(?:---? ?)?below this line is a copy|original message (?:as received is as )?follows|"
    r"(?:the )?original message (?:headers?|is attached|follows)|"
    r"content-type: message/rfc822|included is a copy of the message header|"
    r"your original message)",
    re.IGNORECASE,
)
_HEADER_START = re.compile(
    r"^(?:Return-Path|Received|From|To|Subject|Message-I[Dd]|Date|Delivered-To|MIME-Version)"
    r":[ \t]", re.IGNORECASE)
_ORIGIN_HEADER = re.compile(r"^(?:Return-Path|Received|From|Message-I[Dd]):", re.IGNORECASE)
_HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:[ \t]|^[ \t]+\S")


def split_original(text: str) -> tuple[str, str]:
    """Split plain bounce text into (bounce text, returned original message)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i > 2 and _ORIGINAL_MARKER.match(line) and not re.search(
                r"(?i)original message (?:was|is)\b", line):
            return "\n".join(lines[:i]), "\n".join(lines[i + 1:])
        if _HEADER_START.match(line) and (i == 0 or not lines[i - 1].strip()
                                           or re.match(r"^[-=_ ]{5,}$", lines[i - 1])):
            block = lines[i:i + 12]
            run = 0
            origin = False  # a returned message names its origin; a summary (To/CC/Date) does not
            for candidate in block:
                if not _HEADER_LINE.match(candidate):
                    break
                run += 1 if _HEADER_START.match(candidate) else 0
                origin = origin or bool(_ORIGIN_HEADER.match(candidate))
            if run >= 3 and i > 0 and origin:
                return "\n".join(lines[:i]), "\n".join(lines[i:])
    return text, ""


def load(raw: bytes) -> ParsedMail:
    """Parse any bytes into a ParsedMail; never raises."""
    out = ParsedMail()
    if not isinstance(raw, (bytes, bytearray)):
        raw = bytes(str(raw), "utf-8", errors="replace")
    raw = bytes(raw[:MAX_BYTES])
    try:
        msg = email.message_from_bytes(raw)
    except Exception:  # noqa: BLE001
        out.body = decode_bytes(raw).replace("\r\n", "\n")
        return out
    for name, value in msg.items():
        key = name.lower()
        if key not in out.headers:
            out.headers[key] = decode_header_value(value)
    try:
        out.content_type = msg.get_content_type()
        out.report_type = (msg.get_param("report-type") or "")  # type: ignore[assignment]
        if not isinstance(out.report_type, str):
            out.report_type = str(out.report_type)
        out.report_type = out.report_type.lower()
    except Exception:  # noqa: BLE001
        pass
    try:
        _walk(msg, out)
    except Exception:  # noqa: BLE001 - fall back to the raw text
        out.body = decode_bytes(raw).replace("\r\n", "\n")
    if out.body and not out.original:
        out.body, out.original = split_original(out.body)
    elif out.body:
        body, inline = split_original(out.body)
        if inline and len(body) > 40:
            out.body = body
            out.original = inline + "\n\n" + out.original
    return out
