"""Entry points: classify a bounce mail, or an SMTP reply seen at send time."""

from __future__ import annotations

import re

from . import dsn, lhosts, mta, parse, rules
from .carriers import carrier_filter, carrier_host, host_rule
from .fact import Fact, all_addresses, canonical_address, find_reply_code, find_status, unfold
from .model import BounceResult, filter_evidence, make_result

_MESSAGE_ID = re.compile(r"(?im)^message-id:[ \t]*\n?[ \t]*(<[^>\s]+>)")
_AUTO_REPLY_SUBJECT = re.compile(
    r"(?i)\b(?:out of (?:the )?office|auto(?:matic)?[ -]?(?:reply|response|responder)|"
    r"autoreply|vacation|abwesenheit|absence|away from)\b|^auto:|自動応答|自動返信|不在")
_DELAY_SUBJECT = re.compile(
    r"(?i)\(delay\)|delayed mail|delivery (?:status notification )?\(?delay|warning: could not send|"
    r"delivery delayed|still being retried|message delayed|delayed delivery|"
    r"delayed \d+ (?:hours?|days?|minutes?)|not yet been delivered|mail delivery warning")
#: A plain-text warning that delivery is still being tried (Exim, Sendmail, Postfix, Exchange,
#: Symantec gateways).  Only the bounce's own text is searched, never the returned original.
_DELAY_BODY = re.compile(
    r"(?i)has not yet been delivered|not been delivered yet|delivery attempts will continue|"
    r"will continue to (?:try|attempt)|(?:has|have) been postponed|warning (?:message )?only|"
    r"this is (?:just|only) a warning|no action is required on your part|"
    r"you do not need to (?:take any action|resend)|message will be retried for|"
    r"will keep (?:on )?trying")


def original_message_id(mail: parse.ParsedMail) -> str | None:
    """Message-ID of the returned original message, with angle brackets."""
    match = _MESSAGE_ID.search(mail.original)
    if match:
        return match.group(1)
    for name in ("in-reply-to", "references"):
        ids = re.findall(r"<[^>\s]+@[^>\s]+>", mail.header(name))
        if ids:
            return ids[-1]
    return None


def _is_vacation(mail: parse.ParsedMail) -> bool:
    auto = mail.header("auto-submitted").lower()
    if auto.startswith("auto-generated") or mail.dsn:
        return False
    if auto.startswith("auto-replied") or auto.startswith("auto-notified"):
        return True
    if mail.header("x-autoreply") or mail.header("x-autorespond") or \
            mail.header("x-autoresponder") or mail.header("x-vacation"):
        return True
    if mail.header("precedence").lower() == "auto_reply":
        return True
    return bool(_AUTO_REPLY_SUBJECT.search(mail.header("subject")))


def _human_fact(fact: Fact, by_recipient: dict[str | None, Fact]) -> Fact | None:
    """The text fact about this DSN recipient, under its final or its original address."""
    found = [by_recipient[a] for a in dict.fromkeys((fact.recipient, fact.original_recipient))
             if a and a in by_recipient]
    if len(found) < 2:
        return found[0] if found else None
    first, second = found
    return Fact(recipient=first.recipient, diagnostic=unfold(first.diagnostic + " " + second.diagnostic),
                context=first.context, status=first.status or second.status,
                reply_code=first.reply_code or second.reply_code,
                command=first.command or second.command)


def _facts(mail: parse.ParsedMail) -> list[Fact]:
    facts: list[Fact] = []
    if mail.dsn:
        _, facts = dsn.parse(mail.dsn)
    if not facts and re.search(r"(?im)^\s*final-recipient\s*:", mail.body):
        _, facts = dsn.parse(mail.body)
    text_facts = mta.text_facts(mail)
    if not facts:
        if len(text_facts) == 1 and not text_facts[0].command:
            text_facts[0].command = mta.command_of(unfold(mail.body))
        return text_facts
    by_recipient = {f.recipient: f for f in text_facts}
    for fact in facts:
        human = _human_fact(fact, by_recipient) or (text_facts[0] if len(text_facts) == 1 else None)
        if human is not None:
            if human.diagnostic != fact.diagnostic:
                fact.context = unfold(human.context + " " + human.diagnostic)
            if not fact.diagnostic:
                fact.diagnostic = human.diagnostic
                fact.reply_code = human.reply_code
            if not fact.command:
                fact.command = human.command or mta.command_of(fact.diagnostic)
            if not fact.status or (fact.status.endswith(".0.0") and human.status
                                   and not human.status.endswith(".0.0")
                                   and human.status[0] == fact.status[0]):
                fact.status = human.status or fact.status
        if not fact.command:
            fact.command = mta.command_of(fact.diagnostic)
        if not fact.command and len(facts) == 1:
            fact.command = mta.command_of(unfold(mail.body))
        if not fact.diagnostic_type and (fact.status or fact.reply_code):
            fact.diagnostic_type = "SMTP"
    return facts


#: Reasons of a temporary refusal that, once the MTA has given up retrying, only say
#: why it kept deferring: the failure itself is that the time ran out (``expired``).
GIVEN_UP_HIDES = frozenset({"blocked", "toomanyconn", "speeding", "networkerror", "systemerror",
                            "systemfull", "onhold", "undefined", "securityerror"})
_GAVE_UP = re.compile(
    r"(?i)could not be delivered for (?:more than )?\d+ days?|retry timeout exceeded|"
    r"has been delayed for too long|after multiple retries, giving up|"
    r"(?:could not|unable to) (?:be )?deliver(?:ed)? (?:message )?within \d+ days?")


def _given_up(fact: Fact, body: str) -> bool:
    """A final failure after deferrals: the MTA's own words that it stopped retrying
    (Action: failed with a 4.x.x status alone is not enough: Sisimai keeps the reason of
    the deferral there, and so do we)."""
    return bool(_GAVE_UP.search(fact.diagnostic + " " + fact.context + " " + body[:3000]))


def _says_permanent(fact: Fact) -> bool:
    """A 5xx reply or 5.x.x status: a failure even inside a mail that warns of delays."""
    return fact.status.startswith("5") or (fact.reply_code or 0) >= 500


def _not_bounce(reason: str | None, recipient: str | None = None,
                message_id: str | None = None, diagnostic: str | None = None) -> BounceResult:
    return make_result(reason=reason, recipient=recipient, status=None, diagnostic=diagnostic,
                       reply_code=None, original_message_id=message_id)


def _classify(raw: bytes) -> list[BounceResult]:
    mail = parse.load(raw)
    message_id = original_message_id(mail)

    if mail.feedback or mail.report_type == "feedback-report":
        recipients = all_addresses(" ".join(
            v for k, v in dsn.fields(mail.feedback) if k in ("original-rcpt-to", "removal-recipient")))
        recipients = recipients or [mta.original_recipient(mail)]  # type: ignore[list-item]
        return [_not_bounce("feedback", r, message_id) for r in recipients]

    if lhosts.ses_json(mail):
        pass  # an SES notification: never an auto-reply
    elif not mail.dsn and not _looks_like_bounce(mail) and _is_vacation(mail):
        return [_not_bounce("vacation", canonical_address(mail.header("from")), message_id)]

    if not mail.dsn and not mail.body.strip():
        return [_not_bounce(None, None, message_id)]
    if _is_challenge(mail):
        return [_not_bounce(None, None, message_id,
                            diagnostic="challenge-response request: not a bounce")]

    special = lhosts.special_facts(mail)
    facts = special or _facts(mail)
    ezweb_filter = lhosts.ezweb_filtered(mail)
    if ezweb_filter:
        for fact in facts:
            fact.reason = fact.reason or "filtered"
    delay_warning = bool(_DELAY_SUBJECT.search(mail.header("subject"))) or (
        not mail.dsn and bool(_DELAY_BODY.search(mail.body[:20000])))
    if facts and all(f.action in ("delayed", "relayed", "expanded", "delivered", "") for f in facts) \
            and any(f.action == "delayed" for f in facts):
        delay_warning = True
    if any(f.action == "failed" for f in facts):
        delay_warning = False

    looks_like_bounce = bool(mail.dsn) or bool(special) or _looks_like_bounce(mail)
    results: list[BounceResult] = []
    for fact in facts:
        if fact.action == "delayed" or (delay_warning and fact.action != "failed"
                                         and not _says_permanent(fact)):
            reason = "delayed"
        elif not looks_like_bounce:
            results.append(_not_bounce(None, fact.recipient, message_id))
            continue
        else:
            reason = rules.find_reason(fact, extra=lambda f: host_rule(f, mail.body + mail.dsn))
            if _given_up(fact, mail.body) and reason in GIVEN_UP_HIDES:
                reason = "expired"
        results.append(make_result(
            # forwarded (Original- and Final-Recipient differ): the failure is the
            # address we mailed, not where it was forwarded to
            reason=reason, recipient=fact.original_recipient or fact.recipient,
            status=fact.status or None,
            diagnostic=fact.diagnostic or None, reply_code=fact.reply_code,
            original_message_id=message_id, carrier=carrier_host(fact),
            evidence=ezweb_filter or carrier_filter(fact, mail.body + mail.dsn)
            or filter_evidence(fact.context)))
    return results or [_not_bounce(None, None, message_id)]


_BOUNCE_SUBJECT = re.compile(
    r"(?i)undeliver|returned mail|delivery (?:status|failure|failed|notification|problem)|"
    r"failure notice|mail delivery|non[- ]?delivery|could not be delivered|not delivered|"
    r"mail system error|rejected|bounce|error|failed|unzustellbar|user unknown|配信|不達|エラー|返送")
_BOUNCE_BODY = re.compile(
    r"(?i)could not be delivered to|was not delivered|undeliverable|delivery (?:has )?failed|"
    r"permanent (?:fatal )?error|did not reach the following|unable to deliver|"
    r"送信できませんでした|配信できませんでした|届きませんでした")
_BOUNCE_FROM = re.compile(
    r"(?i)mailer-daemon|post_?master|mail delivery|mail-daemon|maildelivery|\bmdaemon@")
#: Challenge-response filters (Boxbe, SpamArrest, MailInBlack, …) ask the sender to prove
#: they are human.  The mail was not refused: it waits for a click, and it is not a bounce.
_CHALLENGE_FROM = re.compile(r"(?i)@(?:[\w-]+\.)*(?:boxbe\.com|spamarrest\.com|mailinblack\.com|"
                             r"bluebottle\.com|sendio\.com|choicemail\.com)\b")
_CHALLENGE_TEXT = re.compile(
    r"(?i)sender (?:not )?pre-?approved|(?:please|kindly) (?:verify|confirm) (?:that )?you are (?:a )?(?:human|real)|"
    r"verify (?:your|that you are)[^.\n]{0,40}(?:deliver|human|sender)|"
    r"(?:added|add yourself) to (?:my|the recipient's) (?:guest|approved|allowed) (?:list|senders)|"
    r"(?:is|are|was) (?:waiting|pending|held) (?:for|in) (?:your |the sender's )?(?:verification|approval)|"
    r"challenge[- ]response|to complete this verification|requires (?:your )?confirmation before")


def _is_challenge(mail: parse.ParsedMail) -> bool:
    """A challenge-response request (never a DSN): asks us to verify, refuses nothing."""
    if mail.dsn:
        return False
    sender = mail.header("from") + " " + mail.header("reply-to") + " " + mail.header("sender")
    if _CHALLENGE_FROM.search(sender):
        return True
    return bool(_CHALLENGE_TEXT.search(mail.header("subject") + "\n" + mail.body[:5000]))


def _looks_like_bounce(mail: parse.ParsedMail) -> bool:
    """A non-DSN mail is taken for a bounce when its sender or subject says so."""
    if _BOUNCE_FROM.search(mail.header("from")) or _BOUNCE_FROM.search(mail.header("return-path")):
        return True
    if mail.header("return-path").strip() in ("<>", ""):
        if _BOUNCE_SUBJECT.search(mail.header("subject")):
            return True
    if _BOUNCE_SUBJECT.search(mail.header("subject")):
        return True
    if mail.header("x-failed-recipients"):
        return True
    return bool(_BOUNCE_BODY.search(mail.body[:5000]))


def classify_mail(raw: bytes) -> list[BounceResult]:
    """Classify one mail: one result per failed recipient.

    A mail that is not a bounce gives one result with ``is_bounce=False`` and reason
    None, or ``vacation``/``delivered``/``feedback``/``delayed`` when that fits.  Never
    raises: whatever goes wrong inside gives a not-a-bounce result that says so.
    """
    try:
        return _classify(bytes(raw or b""))
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        return [_not_bounce(None, diagnostic=f"not classified: {type(exc).__name__}: {exc}")]


def classify_smtp_reply(code: int, text: str, *, command: str = "RCPT",
                        recipient: str | None = None) -> BounceResult:
    """Classify a reply the relay gave at send time (e.g. 550 "5.1.1 … User unknown").

    2xx gives ``delivered``; 4xx replies are never permanent.
    """
    diagnostic = unfold(f"{code} {text}" if not str(text).lstrip().startswith(str(code)) else text)
    address = canonical_address(recipient) if recipient else None
    status = find_status(diagnostic)
    reply = code if isinstance(code, int) and 200 <= code < 600 else find_reply_code(diagnostic)
    evidence = False
    if reply is not None and 200 <= reply < 300:
        reason = "delivered"
    else:
        fact = Fact(recipient=address or canonical_address(text), status=status,
                    diagnostic=diagnostic, diagnostic_type="SMTP", reply_code=reply,
                    command=(command or "").upper().replace("RCPT TO", "RCPT")
                    .replace("MAIL FROM", "MAIL"), action="failed")
        if fact.command == "END OF DATA":
            fact.command = "DATA"
        reason = rules.find_reason(fact, extra=lambda f: host_rule(f, ""))
        address = fact.recipient
        evidence = carrier_filter(fact, "")
    return make_result(reason=reason, recipient=address, status=status or None,
                       diagnostic=diagnostic, reply_code=reply, original_message_id=None,
                       evidence=evidence)
