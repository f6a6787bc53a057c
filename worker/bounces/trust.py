"""How far a bounce mail may be believed (pure; no I/O).

A bounce mail is a claim by a stranger that our mail to a patron failed. Acted on
blindly, one forged mail from anyone suspends a patron's address, fans out to the
family's cards and takes a hold that was mailed back onto the call list. So:

**Verified** evidence — and only verified evidence — may suspend an address and put a
mailed hold back on the call list (as :mod:`worker.app.bounce_effects` does for it):

* a bounce traced by a **valid VERP token**: it came back to the envelope sender
  ``bounce+TOKEN@…`` of one notice, and the token (random, 128 bits, kept in Redis) is
  known only to the mail systems that carried that notice;
* a bounce traced by **our own Message-ID inside a real delivery-status report**: the
  envelope sender is null (``Return-Path: <>``), or — where no envelope sender was
  recorded — the mail is from ``MAILER-DAEMON``/``postmaster``; *and* the mail is a
  ``multipart/report`` with a ``message/delivery-status`` part (RFC 3464).

**Unverified** is everything weaker: traced by the failed address only; free text from
an ordinary sender, even one quoting a real Message-ID; no report structure; a return
path token that does not exist (forged, mistyped or expired). Unverified evidence never
suspends and never takes a hold off its outcome: it may add bounce points (at most one
a day per address, as any bounce) and is shown to staff as "unverified" with the
evidence, so they can decide on the phone. A flood of it for one address is
rate-limited (``[bounces] unverified_per_day``); the same mail counts once whatever
its trust (the ingest fingerprint).

Failures the relay reports at send time (a 5xx to our own RCPT) are first-hand and
count as verified (:data:`SEND_TIME`).
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses, parseaddr
from typing import Literal

from ..masking import mask_address

TokenState = Literal["valid", "unknown", "absent"]
Traced = Literal["verp", "message-id", "address", "none"]

_SYSTEM_SENDERS = frozenset({"mailer-daemon", "postmaster"})
_HEADERS_ONLY = email.parser.BytesHeaderParser(policy=email.policy.compat32)
# headers in which the delivering MTA records the envelope recipient (Postfix, Dovecot,
# Exim, qmail): where a bounce to bounce+TOKEN@… shows its token
ENVELOPE_TO_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")
_REPORT = re.compile(r"multipart/report\b", re.I)
_DELIVERY_STATUS = re.compile(rb"^content-type:[ \t]*message/(global-)?delivery-status",
                              re.I | re.M)


@dataclass(frozen=True)
class MailFacts:
    """What the outside of a bounce mail says about who sent it and how."""

    envelope_sender: str | None  # topmost Return-Path: "" for <>, None when absent
    from_address: str            # the From header's address, lower case ("" if none)
    report: bool                 # multipart/report with a message/delivery-status part
    envelope_to: tuple[str, ...]  # envelope recipients the delivering MTA recorded

    @property
    def system_sender(self) -> bool:
        """Null envelope sender or MAILER-DAEMON/postmaster. A recorded envelope sender
        wins over the From header, which anyone can write."""
        if self.envelope_sender is not None:
            return (self.envelope_sender == ""
                    or _local(self.envelope_sender) in _SYSTEM_SENDERS)
        return _local(self.from_address) in _SYSTEM_SENDERS


@dataclass(frozen=True)
class Trust:
    verified: bool
    may_suspend: bool    # the address may be suspended (by the bounce policy's verdict)
    may_rephone: bool    # a mailed hold may go back on the call list
    evidence: str        # for staff: why it is (un)verified, in one line

    @property
    def label(self) -> str:
        return "verified" if self.verified else "unverified"


SEND_TIME = Trust(True, True, True, "the relay refused the recipient when we sent")


def assess(traced: Traced, token: TokenState, facts: MailFacts) -> Trust:
    """The trust rule (module docstring), as one table-tested function."""
    def weak(why: str) -> Trust:
        return Trust(False, False, False, f"unverified: {why}")

    if token == "unknown":
        return weak("sent to a return-path token we never issued or that expired"
                    " (possibly forged)")
    if traced == "verp":
        return Trust(True, True, True, "verified: came back to the notice's own return path")
    sender = _sender_words(facts)
    if traced == "message-id":
        if facts.system_sender and facts.report:
            return Trust(True, True, True, f"verified: delivery-status report from {sender}"
                                           " quoting our Message-ID")
        missing = [w for w, ok in (("not from a mail system", facts.system_sender),
                                   ("not a delivery-status report", facts.report)) if not ok]
        return weak(f"quotes our Message-ID but is {' and '.join(missing)} (from {sender})")
    if traced == "address":
        return weak(f"traced by the failed address only (from {sender},"
                    f" {'a' if facts.report else 'no'} delivery-status report)")
    return weak(f"not traced to any notice (from {sender})")


def mail_facts(raw: bytes) -> MailFacts:
    """Read :class:`MailFacts` from a mail's header and structure. Never raises."""
    try:
        head = raw[:262144].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0] + b"\n\n"
        msg: Message = _HEADERS_ONLY.parsebytes(head)
        rp = msg.get_all("Return-Path") or []
        envelope_sender = parseaddr(str(rp[0]))[1].strip().lower() if rp else None
        if rp and envelope_sender == "" and "<>" not in str(rp[0]).replace(" ", ""):
            envelope_sender = None  # an unreadable Return-Path is no evidence of <>
        from_address = parseaddr(str(msg.get("From", "")))[1].lower()
        ctype = str(msg.get("Content-Type", ""))
        report = bool(_REPORT.match(ctype.strip())) and bool(_DELIVERY_STATUS.search(raw))
        to: list[str] = []
        for name in ENVELOPE_TO_HEADERS:
            to += [a.lower() for _, a in getaddresses([str(v) for v in msg.get_all(name) or []])
                   if a]
        return MailFacts(envelope_sender, from_address, report, tuple(to))
    except Exception:  # noqa: BLE001 - hostile input: no facts means no trust
        return MailFacts(None, "", False, ())


def _local(address: str) -> str:
    return address.rpartition("@")[0].strip('"').lower() if "@" in address else address.lower()


def _sender_words(facts: MailFacts) -> str:
    if facts.envelope_sender == "":
        return "the null sender <>"
    addr = facts.envelope_sender or facts.from_address
    if not addr:
        return "no sender"
    # a mail system's address is no one's personal data; anyone else's is masked
    return addr if _local(addr) in _SYSTEM_SENDERS else mask_address(addr)
