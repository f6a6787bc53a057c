"""The bounce vocabulary: one result type and one table of reasons.

Reason names follow the taxonomy of the Sisimai bounce analyser
(https://libsisimai.org, BSD 2-Clause, (C) azumakuniyuki and the sisimai
development team), plus four outcomes that are not bounces: ``vacation``,
``delivered``, ``feedback`` and ``delayed``.

Two flags are derived here, in one place, so callers never re-decide them:

* ``permanent``: the remote side says retrying will not help (a 5xx reply or a
  ``5.x.x`` status, or a failure that is permanent by nature when no code is
  given).  A reason in :data:`SOFT_REASONS` is never permanent even with a 5xx
  code: a full mailbox or a rate limit clears by itself.  4xx and delay
  warnings are never permanent.
* ``misconfigured_recipient``: the *patron* must change a setting so that our
  mail gets through (see :data:`MISCONFIGURED_REASONS` and
  :func:`is_misconfigured`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..contact.domains import is_carrier_domain

#: Every reason this package can return, with a one-line meaning.
REASONS: dict[str, str] = {
    # -- the recipient's address or mailbox ------------------------------------------------
    "userunknown": "the local part does not exist at the destination (5.1.1)",
    "hostunknown": "the recipient's domain does not exist or has no usable MX/A (5.1.2)",
    "hasmoved": "the mailbox has moved and mail is not forwarded (5.1.6)",
    "mailboxfull": "the recipient's mailbox is over quota (5.2.2); usually clears",
    "suspend": "the recipient's account or phone line is suspended or disabled",
    "filtered": "refused by the recipient's own filter or settings (carrier domain/sender filters)",
    "notaccept": "the destination accepts no mail at all (null MX, 521/556)",
    # -- our sender, IP or message ------------------------------------------------------------
    "rejected": "the destination refused our envelope sender (MAIL FROM) or its domain",
    "blocked": "refused because of our sending IP address or host name",
    "badreputation": "refused because of our IP's or domain's reputation",
    "requireptr": "our sending IP has no (valid) PTR record",
    "authfailure": "SPF, DKIM or DMARC checks failed",
    "spamdetected": "the content was judged to be spam",
    "virusdetected": "the content was judged to carry malware",
    "policyviolation": "refused under the destination's own policy",
    "securityerror": "a security requirement failed (authentication, TLS, certificates)",
    "failedstarttls": "STARTTLS could not be negotiated",
    "contenterror": "a header or format problem in the message",
    "notcompliantrfc": "the message is not RFC 5322 compliant (for example duplicate headers)",
    "mesgtoobig": "the message is larger than the destination accepts",
    "exceedlimit": "the message exceeds some other limit",
    "syntaxerror": "SMTP command syntax or sequence error (501/503)",
    # -- transport and systems ----------------------------------------------------------------
    "toomanyconn": "too many connections or recipients at once; temporary",
    "speeding": "rate-limited: we send too fast",
    "norelaying": "relaying denied: wrong MX or a relay misconfiguration on our side",
    "systemerror": "an error on the remote system",
    "systemfull": "the remote system's disk is full",
    "mailererror": "a local delivery program (pipe, procmail) failed",
    "networkerror": "DNS, routing or connection failure",
    "expired": "delivery was given up after retrying for too long",
    "onhold": "a failure, but too little information to say why",
    "undefined": "a failure whose reason could not be detected",
    # -- not bounces ----------------------------------------------------------------------------
    "delayed": "a 'still retrying' warning; the message may yet be delivered",
    "vacation": "an auto-reply or out-of-office message (RFC 3834)",
    "delivered": "a success report (Action: delivered, status 2.x.x)",
    "feedback": "an ARF abuse or feedback-loop report",
}

#: Outcomes that are not bounces.
NOT_BOUNCES: frozenset[str] = frozenset({"delayed", "vacation", "delivered", "feedback"})

#: Failures that clear by themselves even when reported with a 5xx code.
SOFT_REASONS: frozenset[str] = frozenset(
    {"mailboxfull", "toomanyconn", "speeding", "systemfull", "expired", "onhold", "undefined"}
)

#: Failures that are permanent by nature when the bounce carries no code at all.
HARD_BY_NATURE: frozenset[str] = frozenset(
    {"userunknown", "hostunknown", "hasmoved", "notaccept", "suspend", "filtered"}
)

#: Reasons that can mean the patron must change a setting (their own filter) so mail
#: arrives — only with evidence of that filter (:func:`filter_evidence`): Sisimai says
#: ``filtered`` also for a disabled, unavailable or unknown mailbox.
MISCONFIGURED_REASONS: frozenset[str] = frozenset({"filtered", "rejected"})

#: Failures whose cause is our sender (authentication, our IP or domain blocked or of bad
#: reputation, no reverse DNS, our envelope sender refused): never the patron's to fix.
SENDER_REASONS: frozenset[str] = frozenset(
    {"authfailure", "badreputation", "blocked", "requireptr", "rejected"})

#: Words with which a receiver says the *recipient's own* filter or reception setting
#: refused us (lower case). "user not found" or "mailbox unavailable" are not among them.
RECIPIENT_FILTER: tuple[str, ...] = (
    "message rejected due to user rules", "recipient id refuse to receive mail",
    "recipient is only accepting mail from specific email addresses",
    "refused due to recipient preferences", "user refuses to receive this mail",
    "user reject", "you have been blocked by the recipient", "rejected by recipient's filter",
    "rejected by the domain filter", "has restricted sms e-mail", "blocked by the recipient",
    "recipient's filter", "recipient filter", "user's filter", "recipient's preferences",
    "on the recipient's block list", "on the recipient's blocked senders list",
    "account is protected by", "受信拒否", "指定受信", "ドメイン指定", "迷惑メールフィルタ",
    "なりすまし規制",
)


def filter_evidence(text: str | None) -> bool:
    """Whether a bounce's text shows the recipient's own filtering."""
    lowered = (text or "").lower()
    return any(phrase in lowered for phrase in RECIPIENT_FILTER)


def is_carrier_address(address: str | None) -> bool:
    """True when the address's domain is (a subdomain of) a Japanese mobile carrier's
    (:mod:`worker.contact.domains`: one list for the advice staff read out and for this
    judgement)."""
    if not address or "@" not in address:
        return False
    return is_carrier_domain(address.rsplit("@", 1)[1])


def is_misconfigured(reason: str | None, recipient: str | None, permanent: bool,
                     carrier: bool = False, evidence: bool = False) -> bool:
    """Whether the patron's own settings are the cause: only on ``evidence`` of their
    filter (its words in the bounce, or a carrier's own way of saying it: docomo's 5.2.0,
    au's "550 : User unknown", EZweb's X-SPASIGN: NG — worker/bounces/carriers.py).

    * ``filtered`` or ``rejected`` (our sender refused) with that evidence;
    * a permanent ``policyviolation`` at a carrier with that evidence (family filters).

    A reason alone is never enough: a carrier's なりすまし filter refuses mail that fails
    SPF/DKIM, which is our fault, in words no different from a plain refusal.
    """
    if not evidence:
        return False
    if reason in MISCONFIGURED_REASONS:
        return True
    carrier = carrier or is_carrier_address(recipient)
    return reason == "policyviolation" and permanent and carrier


def is_sender_problem(reason: str | None, misconfigured: bool) -> bool:
    """Whether the failure is ours (see :data:`SENDER_REASONS`), not the patron's."""
    return reason in SENDER_REASONS and not misconfigured


def is_permanent(reason: str | None, status: str | None, reply_code: int | None) -> bool:
    """Whether the failure is permanent (see the module docstring)."""
    if reason is None or reason in NOT_BOUNCES or reason in SOFT_REASONS:
        return False
    klass = None
    if status and status[0] in "245":
        klass = status[0]
    elif reply_code is not None and 200 <= reply_code < 600:
        klass = str(reply_code)[0]
    if klass is not None:
        return klass == "5"
    return reason in HARD_BY_NATURE


@dataclass(frozen=True)
class BounceResult:
    """What one bounce (or non-bounce) says about one recipient."""

    is_bounce: bool
    recipient: str | None = None  # lowercase-domain canonical address, unquoted local part
    original_message_id: str | None = None  # with angle brackets
    reason: str | None = None  # a key of REASONS
    permanent: bool = False  # hard bounce: retrying will not help
    misconfigured_recipient: bool = False  # the patron must change a setting
    status: str | None = None  # enhanced status code such as "5.1.1"
    diagnostic: str | None = None  # unfolded diagnostic text, as the remote side wrote it
    reply_code: int | None = None  # SMTP reply code such as 550
    sender_problem: bool = False  # our sender is at fault (never the patron's)

    def as_json(self, file: str) -> dict[str, Any]:
        """The `bounces classify --json` object for this result (exactly the DESIGN keys)."""
        return {
            "file": file,
            "is_bounce": self.is_bounce,
            "recipient": self.recipient,
            "original_message_id": self.original_message_id,
            "reason": self.reason,
            "permanent": self.permanent,
            "misconfigured_recipient": self.misconfigured_recipient,
            "status": self.status,
            "diagnostic": self.diagnostic,
        }


def make_result(*, reason: str | None, recipient: str | None, status: str | None,
                diagnostic: str | None, reply_code: int | None,
                original_message_id: str | None, carrier: bool = False,
                evidence: bool = False) -> BounceResult:
    """Build a result, deriving is_bounce, permanent, misconfigured_recipient and
    sender_problem.

    ``carrier`` says the failure came from a Japanese mobile carrier's own servers even
    when the recipient's domain does not show it; ``evidence`` that a host rule saw the
    recipient's own filter (the diagnostic's words are looked at here).
    """
    is_bounce = reason is not None and reason not in NOT_BOUNCES
    permanent = is_bounce and is_permanent(reason, status, reply_code)
    misconfigured = is_bounce and is_misconfigured(
        reason, recipient, permanent, carrier, evidence or filter_evidence(diagnostic))
    return BounceResult(
        is_bounce=is_bounce,
        recipient=recipient,
        original_message_id=original_message_id,
        reason=reason,
        permanent=permanent,
        misconfigured_recipient=misconfigured,
        sender_problem=is_bounce and is_sender_problem(reason, misconfigured),
        status=status,
        diagnostic=diagnostic,
        reply_code=reply_code,
    )
