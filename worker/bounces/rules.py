"""Text and status-code tables that map a failure to a reason.

The message fragments and the order in which reasons are tried were learned from the
Sisimai bounce analyser (https://github.com/sisimai, ``reason/why-*.go``,
``smtp/status``; BSD 2-Clause License, (C) azumakuniyuki and the sisimai development
team).  This module is our own Python: each reason has a table of lower-case
fragments (``ANY``: one of them appears) and of ordered pieces (``ALIGNED``: all appear
in this order), and :func:`find_reason` applies them in three passes:

1. *Probe*: for each reason in :data:`PROBE_ORDER`, a small rule looks at the enhanced
   status, the SMTP command and the text (see :func:`_probe`).
2. *Another one*: the status code's own meaning, then text fragments of further
   reasons (:data:`FALLBACK_ORDER`), then status classes (x.6 content, x.7 security).
3. Last resort: ``expired`` for delay reports, ``vacation`` for auto-reply text,
   ``onhold`` when there is any diagnostic text, else ``undefined``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .fact import Fact, join_reply_lines

#: Enhanced status code -> reason (RFC 3463 and later registrations).
STATUS_REASONS: dict[str, str] = {
    "2.1.5": "delivered",
    "4.1.6": "hasmoved", "4.1.7": "rejected", "4.1.8": "rejected", "4.1.9": "systemerror",
    "4.2.1": "blocked", "4.2.2": "mailboxfull", "4.2.3": "exceedlimit", "4.2.4": "filtered",
    "4.3.1": "systemfull", "4.3.2": "notaccept", "4.3.3": "systemerror", "4.3.5": "systemerror",
    "4.4.1": "expired", "4.4.2": "networkerror", "4.4.3": "systemerror", "4.4.4": "networkerror",
    "4.4.5": "systemfull", "4.4.6": "networkerror", "4.4.7": "expired", "4.4.8": "networkerror",
    "4.5.3": "systemerror", "4.5.5": "systemerror",
    "4.6.0": "contenterror", "4.6.2": "contenterror", "4.6.5": "contenterror",
    "4.7.1": "blocked", "4.7.2": "blocked", "4.7.5": "securityerror", "4.7.6": "securityerror",
    "4.7.7": "securityerror", "4.7.12": "securityerror", "4.7.15": "securityerror",
    "4.7.16": "mesgtoobig", "4.7.24": "authfailure", "4.7.25": "requireptr", "4.7.26": "authfailure",
    "5.1.0": "userunknown", "5.1.1": "userunknown", "5.1.2": "hostunknown", "5.1.3": "userunknown",
    "5.1.4": "filtered", "5.1.6": "hasmoved", "5.1.7": "rejected", "5.1.8": "rejected",
    "5.1.9": "systemerror", "5.1.10": "notaccept",
    "5.2.0": "filtered", "5.2.1": "filtered", "5.2.2": "mailboxfull", "5.2.3": "exceedlimit",
    "5.2.4": "filtered",
    "5.3.0": "systemerror", "5.3.1": "systemfull", "5.3.2": "notaccept", "5.3.3": "systemerror",
    "5.3.4": "mesgtoobig", "5.3.5": "systemerror",
    "5.4.0": "networkerror", "5.4.3": "systemerror", "5.4.4": "hostunknown",
    "5.5.2": "syntaxerror", "5.5.3": "toomanyconn", "5.5.4": "systemerror", "5.5.5": "systemerror",
    "5.5.6": "syntaxerror",
    **{f"5.6.{n}": "contenterror" for n in (0, 1, 2, 3, 5, 6, 7, 8, 9)},
    **{f"5.7.{n}": "securityerror" for n in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14, 15, 19)},
    "5.7.13": "suspend", "5.7.16": "mesgtoobig", "5.7.17": "hasmoved", "5.7.18": "hasmoved",
    "5.7.20": "authfailure", "5.7.21": "authfailure", "5.7.22": "authfailure",
    "5.7.23": "authfailure", "5.7.24": "authfailure", "5.7.25": "requireptr",
    "5.7.26": "authfailure", "5.7.27": "notaccept", "5.7.28": "spamdetected",
    "5.7.29": "authfailure", "5.7.30": "failedstarttls",
}

#: Reasons that a later, more specific rule may overrule.
RETRYABLE: frozenset[str] = frozenset({
    "", "undefined", "onhold", "systemerror", "securityerror", "expired", "networkerror",
    "hostunknown", "userunknown",
})

#: SMTP commands sent before DATA: content-based reasons cannot apply to them.
BEFORE_DATA: frozenset[str] = frozenset({"CONN", "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT"})

PROBE_ORDER: tuple[str, ...] = (
    "mailboxfull", "mesgtoobig", "exceedlimit", "suspend", "hasmoved", "norelaying",
    "authfailure", "userunknown", "filtered", "requireptr", "notcompliantrfc", "badreputation",
    "contenterror", "rejected", "hostunknown", "spamdetected", "speeding", "toomanyconn",
    "blocked",
)
FALLBACK_ORDER: tuple[str, ...] = (
    "mailboxfull", "authfailure", "badreputation", "speeding", "spamdetected", "virusdetected",
    "policyviolation", "norelaying", "systemerror", "networkerror", "suspend", "contenterror",
    "systemfull", "notaccept", "expired", "failedstarttls", "securityerror", "mailererror",
    "syntaxerror",
)

from .patterns import ALIGNED, ANY, NOT_REJECTED  # noqa: E402  (tables are long)


def _compile(reason: str) -> re.Pattern[str]:
    parts = [re.escape(s) for s in ANY.get(reason, ())]
    parts += [".*?".join(re.escape(p) for p in seq) for seq in ALIGNED.get(reason, ())]
    return re.compile("|".join(parts) if parts else r"(?!x)x", re.DOTALL)


_COMPILED: dict[str, re.Pattern[str]] = {r: _compile(r) for r in set(ANY) | set(ALIGNED)}
_NOT_REJECTED = re.compile("|".join(re.escape(s) for s in NOT_REJECTED))


def included(reason: str, text: str) -> bool:
    """Whether lower-cased ``text`` holds one of the fragments of ``reason``."""
    if not text:
        return False
    if reason == "rejected" and _NOT_REJECTED.search(text):
        return False
    pattern = _COMPILED.get(reason)
    return bool(pattern and pattern.search(text))


def status_reason(status: str) -> str:
    """The reason an enhanced status code stands for, or ""."""
    return STATUS_REASONS.get(status or "", "")


def _probe(reason: str, fact: Fact, text: str) -> bool:
    """Pass 1: one rule per reason, using status, command, reply code and text."""
    if fact.reason == reason:
        return True
    by_status = status_reason(fact.status)
    command = fact.command
    if reason in ("mailboxfull", "authfailure", "requireptr", "toomanyconn", "blocked",
                  "exceedlimit"):
        return by_status == reason or included(reason, text)
    if reason == "mesgtoobig":
        if by_status == reason:
            return True
        if by_status == "exceedlimit" or fact.status == "5.2.3":
            return False
        return included(reason, text)
    if reason == "suspend":
        return fact.reply_code == 525 or included(reason, text)
    if reason == "hasmoved":
        return by_status == reason or included(reason, text)
    if reason in ("notcompliantrfc", "badreputation", "speeding"):
        return included(reason, text)
    if reason == "norelaying":
        return command not in ("CONN", "EHLO", "HELO") and included(reason, text)
    if reason == "userunknown":
        if by_status == "suspend":
            return False
        if by_status == "userunknown":
            return not any(included(r, text) for r in (
                "norelaying", "blocked", "mailboxfull", "hasmoved", "rejected", "notaccept"))
        # With no SMTP command named, "user unknown" is what it says: a dead mailbox.  Only a
        # refusal *after* RCPT (at DATA) may be a filter in disguise (see "filtered").
        if command == "" and by_status == "filtered":
            return False  # 5.2.x "mailbox disabled" + "unknown user": docomo's filter signature
        return command in ("RCPT", "") and included("userunknown", text)
    if reason == "filtered":
        if by_status == "suspend":
            return False
        if by_status == "filtered":
            return included("userunknown", text) or included("filtered", text)
        if command in BEFORE_DATA:
            # Sisimai reads a refusal at RCPT as "user unknown"; but a reply that says the
            # recipient's own filter refused us (common for a relay relaying a carrier's
            # answer at send time) is a filter, and only a filter the patron can fix.
            return included("filtered", text) and not included("userunknown", text)
        if not command:
            return included("filtered", text)
        return included("filtered", text) or included("userunknown", text)
    if reason == "contenterror":
        if _probe("spamdetected", fact, text):
            return False
        return by_status == reason or included(reason, text)
    if reason == "rejected":
        if by_status == "rejected":
            return True
        if command == "MAIL":
            return included(reason, text)
        if command == "DATA" and by_status != "userunknown":
            return included(reason, text)
        if by_status in ("", "undefined", "onhold", "securityerror", "systemerror"):
            return included(reason, text)
        return False
    if reason == "hostunknown":
        if by_status == "hostunknown":
            return not included("networkerror", text)
        return included(reason, text)
    if reason == "spamdetected":
        if not fact.status:
            return False
        if by_status == reason:
            return True
        return command not in BEFORE_DATA and included(reason, text)
    return included(reason, text)


def _syntax_error(fact: Fact) -> bool:
    code = fact.reply_code or 0
    return 400 < code < 408 or 500 < code < 508


def _another_one(fact: Fact, text: str) -> str:
    """Pass 2: the status code's meaning, then more fragments, then status classes."""
    by_status = status_reason(fact.status)
    if by_status in RETRYABLE or fact.diagnostic_type != "SMTP":
        for reason in FALLBACK_ORDER:
            if included(reason, text):
                return reason
        if by_status:
            return by_status
        prefix = fact.status[:3]
        if prefix in ("5.6", "4.6"):
            return "contenterror"
        if prefix in ("5.7", "4.7"):
            return "securityerror"
        if fact.diagnostic_type.startswith("X-UNIX"):
            return "mailererror"
        if _syntax_error(fact):
            return "syntaxerror"
        if fact.action in ("delayed", "expired"):
            return "expired"
        if fact.command in ("EHLO", "HELO"):
            return "blocked"
    return by_status


def find_reason(fact: Fact, *, extra: Callable[[Fact], str] | None = None) -> str:
    """Decide the reason for one fact.  ``extra`` is a host-specific rule tried first."""
    if fact.reason and fact.reason not in RETRYABLE:
        return fact.reason
    if fact.status.startswith("2.") or fact.action == "delivered":
        return "delivered"
    if extra is not None:
        special = extra(fact)
        if special:
            return special
    text = (join_reply_lines(fact.diagnostic) + " " + fact.context).lower()
    if fact.diagnostic_type in ("SMTP", ""):
        for reason in PROBE_ORDER:
            if _probe(reason, fact, text):
                return reason
    if fact.reason:
        return fact.reason
    reason = _another_one(fact, text)
    if reason and reason not in ("undefined", "onhold"):
        return reason
    if fact.action == "delayed":
        return "expired"
    if included("vacation", text):
        return "vacation"
    return "onhold" if text else "undefined"
