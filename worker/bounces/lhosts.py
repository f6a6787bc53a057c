"""Bounce formats that need their own reader: the generic DSN and text readers get them wrong.

Each reader looks at the whole mail and returns the facts it found (with ``Fact.reason``
set when the format says the reason itself), or None when the mail is not its format.
How these formats look was learned from the Sisimai project's ``lhost/via-*.go``
modules (BSD 2-Clause License, (C) azumakuniyuki and the sisimai development team); the
code is ours.

* Amazon SES notifications delivered as JSON (SNS e-mail subscriptions): ``Bounce``,
  ``Complaint`` (→ ``feedback``) and ``Delivery`` (→ ``delivered``).
* fml mailing-list manager notices ("you are not a member", loop alerts).
* Verizon Wireless (vtext.com, vzwpix.com) MMS/SMS gateway notices.
* au/EZweb: a bounce carrying ``X-SPASIGN: NG`` was stopped by the subscriber's filter.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .fact import Fact, canonical_address, find_reply_code, find_status, unfold
from .parse import ParsedMail

#: SES bounceSubType -> reason ("General" and "Undetermined" leave it to the rules).
_SES_SUBTYPES: dict[str, str] = {
    "MailboxFull": "mailboxfull", "MessageTooLarge": "mesgtoobig",
    "ContentRejected": "contenterror", "AttachmentRejected": "securityerror",
}


def _ses_payload(body: str) -> dict[str, Any] | None:
    start = body.find("{")
    if start < 0 or "notificationType" not in body:
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(body[start:])
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("Message"), str):  # the SNS envelope
        try:
            data = json.loads(data["Message"])
        except ValueError:
            return None
    return data if isinstance(data, dict) and "notificationType" in data else None


def ses_json(mail: ParsedMail) -> list[Fact] | None:
    """Amazon SES notification JSON in the body of an SNS e-mail."""
    data = _ses_payload(mail.body)
    if data is None:
        return None
    kind = str(data.get("notificationType", ""))
    facts: list[Fact] = []
    if kind == "Bounce":
        bounce = data.get("bounce") or {}
        subtype = _SES_SUBTYPES.get(str(bounce.get("bounceSubType", "")), "")
        for rcpt in bounce.get("bouncedRecipients") or []:
            diagnostic = unfold(str(rcpt.get("diagnosticCode") or ""))
            if diagnostic.lower().startswith("smtp;"):
                diagnostic = diagnostic[5:].strip()
            facts.append(Fact(
                recipient=canonical_address(str(rcpt.get("emailAddress") or "")),
                action=str(rcpt.get("action") or "failed").lower(),
                status=find_status(str(rcpt.get("status") or "")) or find_status(diagnostic),
                diagnostic=diagnostic, diagnostic_type="SMTP" if diagnostic else "",
                reply_code=find_reply_code(diagnostic), reason=subtype))
    elif kind == "Complaint":
        for rcpt in (data.get("complaint") or {}).get("complainedRecipients") or []:
            facts.append(Fact(recipient=canonical_address(str(rcpt.get("emailAddress") or "")),
                              reason="feedback"))
    elif kind == "Delivery":
        delivery = data.get("delivery") or {}
        response = unfold(str(delivery.get("smtpResponse") or ""))
        for rcpt in delivery.get("recipients") or []:
            facts.append(Fact(recipient=canonical_address(str(rcpt)), action="delivered",
                              status=find_status(response) or "2.0.0", diagnostic=response,
                              reply_code=find_reply_code(response), reason="delivered"))
    return facts or None


#: fml: body wordings, then subject wordings, per reason.
_FML_BODY: tuple[tuple[str, str], ...] = (
    ("rejected", " header may cause mail loop"), ("rejected", "not member article from "),
    ("rejected", "reject mail from "), ("rejected", "reject spammers:"),
    ("rejected", "you are not a member of this mailing list"),
    ("securityerror", "security alert:"),
    ("systemerror", " has detected a loop condition so that"),
    ("systemerror", "loop back warning:"),
)
_FML_SUBJECT: tuple[tuple[str, str], ...] = (
    ("rejected", " are not member"), ("rejected", "not member article from "),
    ("rejected", "reject mail "), ("rejected", "spam mail from a spammer is rejected"),
    ("systemerror", "fml system error message"), ("systemerror", "loop alert: "),
    ("systemerror", "loop back warning: "), ("systemerror", "warning: unix from loop"),
    ("securityerror", "security alert"),
)


def fml(mail: ParsedMail) -> list[Fact] | None:
    """Notices of the fml mailing-list manager (X-MLServer, From: *-admin@, ".FML" ids)."""
    if not mail.header("x-mlserver") or "-admin@" not in mail.header("from") \
            or ".FML" not in mail.header("message-id"):
        return None
    text = mail.body.split("Original mail as follows:", 1)[0]
    facts: list[Fact] = []
    for line in text.split("\n"):
        match = re.search(r"<([^<>\s]+@[^<>\s]+)>", line)
        if match:
            facts.append(Fact(recipient=canonical_address(match.group(1)), diagnostic=line.strip()))
        elif facts and line.strip():
            facts[-1].diagnostic = unfold(facts[-1].diagnostic + " " + line)
    subject = mail.header("subject").lower()
    for fact in facts:
        lowered = fact.diagnostic.lower()
        fact.reason = next((r for r, w in _FML_BODY if w in lowered), "") or \
            next((r for r, w in _FML_SUBJECT if w in subject), "")
    return facts or None


def verizon(mail: ParsedMail) -> list[Fact] | None:
    """Verizon Wireless gateway notices (post_master@vtext.com, sysadmin@*.vzwpix.com)."""
    sender = mail.header("from").lower()
    if "post_master@vtext.com" not in sender and not re.search(r"sysadmin@[^>\s]*\.vzwpix\.com", sender):
        return None
    text = mail.body + "\n" + mail.original
    match = re.search(r"(?im)^\s*(?:rcpt to|to):\s*(.+)$", text.split("Error:", 1)[-1])
    recipient = canonical_address(match.group(1)) if match else None
    if recipient is None:
        return None
    head = re.split(r"(?m)^(?:Original Message:|Message details:)", mail.body, maxsplit=1)[0]
    lines = [ln.strip() for ln in head.split("\n") if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Error:")), 0)
    diagnostic = unfold(" ".join(lines[start:]))
    lowered = diagnostic.lower()
    reason = "userunknown" if ("no such user here" in lowered
                               or "no valid recipients" in lowered) else ""
    return [Fact(recipient=recipient, diagnostic=diagnostic, reason=reason,
                 reply_code=find_reply_code(diagnostic))]


READERS = (ses_json, fml, verizon)


def special_facts(mail: ParsedMail) -> list[Fact] | None:
    """Facts from the first format-specific reader that recognises the mail, or None."""
    for reader in READERS:
        facts = reader(mail)
        if facts:
            return facts
    return None


def ezweb_filtered(mail: ParsedMail) -> bool:
    """au/EZweb marks a bounce of mail its spam/domain filter refused with X-SPASIGN: NG."""
    return mail.header("x-spasign").strip().upper() == "NG"
