"""Host-specific rules: Japanese mobile carriers first, then big mailbox providers.

A rule applies when the recipient's domain, the Remote-MTA or the bounce text names the
host.  Knowledge of how these hosts answer comes from the Sisimai project's
``rhost/for-*.go`` and ``lhost/*`` modules (BSD 2-Clause License, (C) azumakuniyuki and
the sisimai development team) and from the carriers' own support pages; the code is ours.

* NTT docomo (``mfsmax.docomo.ne.jp``): ``550 Unknown user`` at **RCPT** is a real unknown
  user; at **DATA** (or with ``Status: 5.2.0``) it is the subscriber's reception filter.
* au/KDDI (``msmx.au.com``, ``*.ezweb.ne.jp``): ``550 : User unknown`` with an *empty*
  address is the filter; ``550 <addr>: User unknown`` is a real unknown user.
* EZweb's own non-DSN "Mail System Error - Returned Mail" states its reason in prose.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..contact.domains import is_carrier_domain
from .fact import Fact, join_reply_lines
from .rhosts import provider_rule

_HOST = re.compile(r"[a-z0-9][a-z0-9.-]*\.[a-z]{2,}")

Rule = Callable[[Fact, str], str]


def _docomo(fact: Fact, text: str) -> str:
    diag = fact.diagnostic.lower()
    if fact.status in ("5.1.1",):
        return "userunknown"
    if fact.status == "5.2.0":
        return "filtered"
    for reason, fragments in (("mailboxfull", ("552 too much mail data",)),
                              ("syntaxerror", ("503 bad sequence of commands",
                                               "504 command parameter not implemented")),
                              ("toomanyconn", ("552 too many recipients",))):
        if any(f in diag for f in fragments):
            return reason
    if "550 unknown user" in diag:
        # At RCPT a real unknown user; at DATA the subscriber's filter refused our sender
        # (Sisimai v5.2 calls it "rejected"; see model.is_misconfigured for carriers).
        if fact.command == "RCPT":
            return "userunknown"
        if fact.command == "DATA":
            return "rejected"
    return ""


def _kddi(fact: Fact, text: str) -> str:
    diag = fact.diagnostic.lower()
    if re.search(r"550:? *: *user unknown", diag):  # "550 : User unknown", "550: : User unknown"
        return "filtered"
    if ">: user unknown" in diag:
        return "userunknown"
    return ""


#: host suffix -> rule.  Matched against Remote-MTA, then the recipient domain.
RHOSTS: tuple[tuple[tuple[str, ...], Rule], ...] = (
    (("mfsmax.docomo.ne.jp",), _docomo),
    (("msmx.au.com", ".ezweb.ne.jp"), _kddi),
)


#: Provider-specific wordings, precise enough to trust wherever they appear.  Each row:
#: (reason, lower-case fragment).  First match wins, so specific rows come first.
PROVIDER_PHRASES: tuple[tuple[str, str], ...] = (
    # EZweb / au (KDDI) prose
    ("filtered", "rejected by the domain filter"),
    ("suspend", "the user(s) account is disabled"),
    ("expired", "remote host is not responding"),
    ("mailboxfull", "as their mailbox is full"),
    ("mailboxfull", "メールボックスが一杯"),
    # Google (Gmail, Workspace)
    ("notaccept", "doesn't receive email according to the administrator"),
    ("networkerror", "responded with code nxdomain"),
    ("mailboxfull", "inbox is out of storage space"),
    ("speeding", "receiving mail at a rate that prevents additional messages"),
    ("badreputation", "very low reputation of the sending"),
    ("authfailure", "fails to pass authentication checks"),
    ("authfailure", "is not accepted due to domain's dmarc policy"),
    ("blocked", "ip not in whitelist for rcpt domain"),
    ("blocked", "an unusual rate of unsolicited mail"),
    ("failedstarttls", "tls required for rcpt domain"),
    ("failedstarttls", "must issue a starttls command first"),
    ("notcompliantrfc", "not rfc 5322 compliant"),
    # Microsoft (Exchange, Office 365, Outlook.com)
    ("userunknown", "the recipient name is not recognized"),
    ("userunknown", "resolver.adr.recipnotfound"),
    ("userunknown", "resolver.adr.recipientnotfound"),
    ("userunknown", "resolver.adr.exrecipnotfound"),
    ("userunknown", "unknown recipient or mailbox unavailable"),
    ("userunknown", "recipient not found by smtp address lookup"),
    ("userunknown", "wasn’t found at the destination domain"),
    ("userunknown", "wasn't found at the destination domain"),
    ("networkerror", "message expired, dns query failed"),
    ("expired", "message expired, connection refused"),
    ("blocked", "banned sending ip"),
    ("exceedlimit", "resolver.rst.recipsizelimit"),
    # Tencent (QQ), GoDaddy, others
    ("toomanyconn", "ip frequency limited"),
    ("toomanyconn", "connection frequency limited"),
    ("authfailure", "dmarc check failed"),
    ("speeding", "has sent to too many recipients this hour"),
    ("blocked", "spamhaus.org/query/bl"),
    ("userunknown", "rcp-p1 http://postmaster.facebook.com"),
    ("filtered", "rcp-p2 http://postmaster.facebook.com"),
    # Gmail's own (non-DSN) notices, GMX, Domino/Notes, Trend Micro
    ("expired", "the recipient server did not accept our requests to connect"),
    ("expired", "delivery retry timeout exceeded"),
    ("userunknown", "not listed in domino directory"),
    ("userunknown", "not listed in public name & address book"),
    ("userunknown", "please check if address is correct"),
    # qmail, sendmail wordings that the generic tables get wrong
    ("notaccept", "couldn't find a mail exchanger or ip address"),
    ("systemerror", "unable to contact ldap server"),
    ("systemfull", "insufficient disk space; try again later"),
)


def provider_phrase(text: str) -> str:
    """A reason from :data:`PROVIDER_PHRASES`, or ""."""
    lowered = text.lower()
    for reason, fragment in PROVIDER_PHRASES:
        if fragment in lowered:
            return reason
    return ""


def carrier_host(fact: Fact) -> bool:
    """Whether the failure came from a Japanese mobile carrier's mail servers."""
    words = (fact.remote_mta or "").split()  # "lsean.ezweb.ne.jp. (27.85.176.228, …)"
    return bool(words) and is_carrier_domain(words[0])


def carrier_filter(fact: Fact, mail_text: str) -> bool:
    """Whether a carrier's own rule reads the failure as the subscriber's reception filter
    (docomo's 5.2.0 or "550 Unknown user" after DATA, au's "550 : User unknown")."""
    domain = (fact.recipient or "").rsplit("@", 1)[-1].lower()
    remote = (fact.remote_mta or "").lower()
    for suffixes, rule in RHOSTS:
        if any(remote.endswith(s.lstrip(".")) or domain.endswith(s.lstrip("."))
               for s in suffixes):
            return rule(fact, mail_text) in ("filtered", "rejected")
    return False


def host_rule(fact: Fact, mail_text: str) -> str:
    """A reason from the host-specific rules, or "".

    Order: Google Groups, the Japanese carriers' rules, the big providers' own codes
    (:mod:`worker.bounces.rhosts`), then the provider wordings in :data:`PROVIDER_PHRASES`.
    """
    domain = (fact.recipient or "").rsplit("@", 1)[-1].lower()
    if domain == "googlegroups.com" or domain.endswith(".googlegroups.com"):
        return "rejected"  # Google Groups: not allowed to post / no such group
    remote = (fact.remote_mta or "").lower()
    hosts = sorted(set(_HOST.findall(mail_text.lower()[:20000])))
    for suffixes, rule in RHOSTS:
        for suffix in suffixes:
            bare = suffix.lstrip(".")
            if remote.endswith(bare) or domain.endswith(bare) or bare in hosts:
                reason = rule(fact, mail_text)
                if reason:
                    return reason
    text = (join_reply_lines(fact.diagnostic) + " " + fact.context).lower()
    reason = provider_rule(fact, join_reply_lines(fact.diagnostic).lower(), hosts)
    if reason:
        return reason
    return provider_phrase(text)
