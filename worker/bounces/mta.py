"""Bounces without (usable) RFC 3464 fields: Postfix, Sendmail, Exim, qmail, Exchange,
Gmail, Yahoo, Courier, Domino, … written as plain text.

The detectors here read the human-readable part of a bounce and return one
:class:`~worker.bounces.fact.Fact` per failed recipient.  They are deliberately
generic: each recipient's *block* is the text from the line naming it to the line
naming the next one, and the block's reply code, status and wording are what the rules
in :mod:`worker.bounces.rules` look at.
"""

from __future__ import annotations

import re

from .fact import (Fact, addresses_at, all_addresses, canonical_address, find_reply_code,
                   find_status, unfold)
from .parse import ParsedMail

_COMMANDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)in reply to (?:the )?(rcpt to|mail from|end of data|data|helo|ehlo|"
                r"starttls|auth|connect)"), ""),
    (re.compile(r"(?i)(?:smtp error from remote (?:mail server|mailer) )?after "
                r"(rcpt to|mail from|end of data|data|helo|ehlo|initial connection|"
                r"pipelined data|starttls|auth)"), ""),
    (re.compile(r"(?im)^\s*>>> (rcpt to|mail from|data|helo|ehlo|starttls|auth)\b"), ""),
    (re.compile(r"(?i)most progress was (rcpt to|mail from|data)"), ""),
    (re.compile(r"(?i)smtp command\W+(rcpt to|mail from|data|helo|ehlo|rcpt|mail)\b"), ""),
    (re.compile(r"(?i)\b(rcpt to|mail from)\s*:?\s*<"), ""),
)
_COMMAND_NAMES = {
    "rcpt to": "RCPT", "mail from": "MAIL", "end of data": "DATA", "data": "DATA",
    "pipelined data": "DATA", "helo": "HELO", "ehlo": "EHLO", "starttls": "STARTTLS",
    "auth": "AUTH", "connect": "CONN", "initial connection": "CONN", "rcpt": "RCPT",
    "mail": "MAIL",
}

#: Local parts that are never the failed recipient.
_SYSTEM_LOCALS = re.compile(
    r"^(?:postmaster|mailer-daemon|mailer_daemon|mail-daemon|maildaemon|daemon|root|"
    r"nobody|noreply|no-reply|bounce|bounces|abuse|hostmaster|webmaster|admin)$", re.I)

#: A line with an SMTP-looking failure on it.
_ERROR_HINT = re.compile(
    r"(?i)(?<![\d.])[45]\d\d[ \-]|\b[45]\.\d{1,3}\.\d{1,3}\b|unknown|not exist|rejected|refused|"
    r"denied|blocked|full|quota|invalid|disabled|suspend|failed|error|expired|timed? ?out|"
    r"spam|filter|not found|no such|giving up|couldn't|could not|unable|unavailable|"
    r"doesn't have|does not have|no longer|cannot be delivered|undeliverable|"
    r"見つかりません|存在しません|拒否|容量|エラー|宛先")


_ALIAS_LINE = re.compile(r"(?i)^\s*\((?:generated|expanded) from\b")
_ONE_LINE_REPLY = re.compile(r"^\s*[45]\d\d[ -]<[^>\s]+@[^>\s]+>\.\.\.\s*\S")
#: "… not accepting mail from lib@…": the address after "from" is a sender, never the recipient.
_SENDER_BEFORE = re.compile(r"(?i)\bfrom:?\s*[<\[\"'(]?\s*$")
#: "  To: a@…  Cc: b@…  Subject: …" — a summary of the original message's headers (Exchange,
#: Notes) or the quoted headers themselves: their addresses are recipients of the original,
#: not necessarily failed ones, so they count only when nothing else names a recipient.
_SUMMARY_LINE = re.compile(
    r"(?i)^[\s>*\-]*(?:to|cc|bcc|from|reply-to|sender|subject|sent|date|received|"
    r"delivered-to|x-original-to|return-path|message-id)\s*:")
#: A line that is only an address: "<taro@example.jp>:", "[taro@example.jp]", "  taro@…".
_LISTED = re.compile(r"^[\s*\-]*[<\[(\"]?\s*[^\s<>\[\]()\"]+@[^\s<>\[\]()\"]+\s*[>\])\"]?\s*:?\s*$")
#: Sentences that give examples or advice ("e.g., if mike.fox@… fails, try …").
_EXAMPLE_SENTENCE = re.compile(
    r"(?i)\be\.g\.|\bfor (?:example|instance)\b|\bsuch as\b|\btry (?:sending|e-?mailing|mailing)\b|"
    r"\bstandard form of\b|\binstead\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`])|\n\s*\n")
#: Local parts that stand for "someone's address" in help texts.
_PLACEHOLDER_LOCALS = re.compile(
    r"^(?:name|username|your[._-]?name|someone|somebody|(?:first|last)[._-]?name\w*|"
    r"first[._-]last)$", re.I)
_ORIGINAL_RECIPIENT_LINE = re.compile(
    r"(?im)^[>\s]*(?:to|cc|delivered-to|x-original-to|envelope-to|x-rcpt-to)\s*:(.*(?:\n[ \t].*)*)")
_SMTP_REPLY = re.compile(r"(?<![\d.])[45]\d\d[ -]|\b[45]\.\d{1,3}\.\d{1,3}\b")
_RECEIVED_FOR = re.compile(r"(?i)\bfor\s+<([^<>\s]+@[^<>\s]+)>")


def command_of(text: str) -> str:
    """The SMTP command a failure answered (RCPT, MAIL, DATA, …) or ""."""
    found = ""
    for pattern, _ in _COMMANDS:
        matches = pattern.findall(text or "")
        if matches:
            found = _COMMAND_NAMES.get(matches[-1].lower(), "")
            if found:
                return found
    return found


def excluded_addresses(mail: ParsedMail) -> set[str]:
    """The bounce's own From/To/Return-Path: never the failed recipient."""
    out: set[str] = set()
    for name in ("from", "to", "return-path", "reply-to", "sender", "errors-to"):
        for addr in all_addresses(mail.header(name)):
            out.add(addr)
    return out


def _is_recipient_candidate(addr: str, excluded: set[str]) -> bool:
    local = addr.split("@", 1)[0]
    return addr not in excluded and not _SYSTEM_LOCALS.match(local)


def example_addresses(text: str) -> set[str]:
    """Addresses that a bounce's help text gives as examples or placeholders."""
    out: set[str] = set()
    for sentence in _SENTENCE_END.split(text or ""):
        example = bool(_EXAMPLE_SENTENCE.search(sentence))
        for addr, _ in addresses_at(sentence):
            if example or _PLACEHOLDER_LOCALS.match(addr.split("@", 1)[0]):
                out.add(addr)
    return out


def original_recipients(mail: ParsedMail) -> set[str]:
    """Who the returned original message was addressed to (its To/Cc and envelope lines)."""
    found: set[str] = set()
    for match in _ORIGINAL_RECIPIENT_LINE.finditer(mail.original):
        found.update(all_addresses(match.group(1)))
    found.update(filter(None, map(canonical_address, _RECEIVED_FOR.findall(mail.original))))
    return found


def original_recipient(mail: ParsedMail) -> str | None:
    """The To/Delivered-To of the returned original message, if it is there."""
    for name in ("x-failed-recipients", "to", "delivered-to", "x-original-to", "envelope-to"):
        match = re.search(rf"(?im)^{name}:[ \t]*(.*(?:\n[ \t].*)*)", mail.original)
        if match:
            addr = canonical_address(match.group(1))
            if addr:
                return addr
    return None


def text_facts(mail: ParsedMail) -> list[Fact]:
    """Facts from the human-readable text of a bounce (see the module docstring)."""
    text = mail.body
    lines = text.split("\n")
    excluded = excluded_addresses(mail)
    failed_header = all_addresses(mail.header("x-failed-recipients"))

    # 1. Where is each candidate recipient first named?
    excluded |= example_addresses(text)
    first_line: dict[str, int] = {}
    summary: dict[str, int] = {}  # named only in a header summary / quoted header line
    for index, line in enumerate(lines):
        if _ALIAS_LINE.search(line):
            continue  # Exim: "(generated from alias@…)" names the alias, not the recipient
        in_summary = bool(_SUMMARY_LINE.match(line))
        for addr, at in addresses_at(line):
            if addr in first_line or not _is_recipient_candidate(addr, excluded):
                continue
            if _SENDER_BEFORE.search(line[max(0, at - 12):at]):
                continue
            if in_summary:
                summary.setdefault(addr, index)
            else:
                first_line[addr] = index
    if not first_line:
        first_line = summary
    candidates = failed_header or list(first_line)
    # Several candidates, some of them recipients of the returned original: those are the ones.
    # (Only in prose bounces: where SMTP replies name them, every named recipient failed.)
    addressed = [a for a in candidates if a in original_recipients(mail)] \
        if not failed_header and not _SMTP_REPLY.search(text) else []
    if addressed and len(addressed) < len(candidates):
        candidates = addressed
    if failed_header:
        for addr in failed_header:
            first_line.setdefault(addr, 0)

    # 2. Each candidate's block runs to the line naming the next candidate.
    starts = sorted((first_line[a], a) for a in candidates if a in first_line)
    blocks: list[tuple[str, str, str]] = []
    for position, (start, addr) in enumerate(starts):
        end = starts[position + 1][0] if position + 1 < len(starts) else len(lines)
        end = min(end, start + 25) if end > start else start + 25
        # The first recipient's reason is often written just above it (EZweb, KDDI).
        above = "\n".join(lines[max(0, start - 4):start]) if position == 0 else ""
        if _ONE_LINE_REPLY.match(lines[start]):
            end = start + 1  # sendmail: "554 <addr>... reason" is the whole diagnostic
        blocks.append((addr, "\n".join(lines[start:end]), above))
    facts = [_fact_from_block(a, b, p) for a, b, p in blocks
             if _ERROR_HINT.search((p + b).replace(a, ""))]
    if len(blocks) > 1:
        # Netscape, Sina: a list of bare addresses under one explanation.  Every listed
        # recipient failed, with the reason the whole text gives.
        shared = unfold("\n".join(ln for ln in lines if _ERROR_HINT.search(ln)))[:600]
        shared = shared or (facts[0].context + " " + facts[0].diagnostic if facts else "")
        named = {f.recipient for f in facts}
        facts += [_fact_from_block(a, b.split("\n", 1)[0], shared) for a, b, _ in blocks
                  if a not in named and _LISTED.match(b.split("\n", 1)[0]) and shared.strip()]

    # 3. Nobody named in an error block: one fact from the whole text.
    if not facts:
        only = blocks[0][0] if len(blocks) == 1 else None  # named once, reason elsewhere
        recipient = (failed_header[0] if failed_header else None) or only \
            or original_recipient(mail) or (candidates[0] if candidates else None)
        error_lines = [ln for ln in lines if _ERROR_HINT.search(ln)]
        if len(unfold(text)) <= 600:
            error_lines = [ln for ln in lines if ln.strip()]  # short: the whole text is the reason
        listed = [a for a, b, _ in blocks if _LISTED.match(b.split("\n", 1)[0])]
        for address in (listed if len(listed) > 1 and not failed_header else [recipient]):
            facts.append(_fact_from_block(address, "\n".join(error_lines) or text))
    return facts


def _fact_from_block(recipient: str | None, block: str, above: str = "") -> Fact:
    diagnostic = unfold(block)
    fact = Fact(recipient=recipient, diagnostic=diagnostic, context=unfold(above))
    fact.status = find_status(diagnostic)
    fact.reply_code = find_reply_code(diagnostic)
    if not fact.status and not fact.reply_code and fact.context:
        # "Could not be delivered because of 550 5.1.1 User unknown" above the address.
        fact.status = find_status(fact.context)
        fact.reply_code = find_reply_code(fact.context)
    fact.command = command_of(diagnostic)
    fact.diagnostic_type = "SMTP" if (fact.status or fact.reply_code) else ""
    return fact
