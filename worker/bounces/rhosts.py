"""Rules for big mail providers whose replies carry their own error codes or wordings.

A rule applies when the recipient's domain, the remote MTA or a host named in the bounce
(its Reporting-MTA, for example) belongs to the provider.  What each provider's codes mean
was learned from the Sisimai project's ``rhost/for-*.go`` modules (BSD 2-Clause License,
(C) azumakuniyuki and the sisimai development team), which cite the providers' own
postmaster pages; the tables and the code here are ours.

* Cox (``cox.net``): ``AUP#CXBL``-style codes.
* Spectrum/Charter (``charter.net``): ``AUP#In-1310``-style four-digit codes in ranges.
* Orange / La Poste (France PTT): ``OFR_506``, ``LPN000_630``-style codes.
* Mimecast: (reply code, wording) pairs.
* Symantec/Broadcom MessageLabs, Yahoo Inc. and AOL: wordings.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .fact import Fact

#: (recipient-domain or host suffix, …) -> provider name.
HOSTS: dict[str, tuple[str, ...]] = {
    "aol": (".mail.aol.com", ".mx.aol.com"),
    "cox": ("cox.net",),
    "franceptt": ("laposte.net", "orange.fr", "wanadoo.fr"),
    "messagelabs": (".messagelabs.com",),
    "mimecast": (".mimecast.com",),
    "spectrum": ("charter.net",),
    "yahooinc": (".yahoodns.net",),
}

_COX_CODES: dict[str, str] = {
    "CXBL": "blocked", "CDRBL": "blocked", "CXDNS": "requireptr", "CXSNDR": "authfailure",
    "CXSMTP": "rejected", "CXCNCT": "toomanyconn", "CXMXRT": "toomanyconn",
    "CXTHRT": "securityerror", "CXMJ": "securityerror",
}
_COX_PHRASES: tuple[tuple[str, str], ...] = (
    ("blocked", "cox too many bad commands from"), ("blocked", "too many invalid recipients"),
    ("requireptr", "dns check failure - try again later"), ("requireptr", "rejected - no rdns"),
    ("policyviolation", "esmtp no data before greeting"),
    ("policyviolation", "attachment extension is forbidden"),
    ("systemerror", "esmtp server temporarily not available"),
    ("toomanyconn", "too many sessions from"),
    ("toomanyconn", "requested action aborted: try again later"),
    ("toomanyconn", "message threshold exceeded"),
    ("rejected", "sender rejected"), ("userunknown", "recipient rejected"),
)


def _cox(fact: Fact, text: str) -> str:
    match = re.search(r"AUP#([A-Z0-9]+)", fact.diagnostic)
    if match:
        code = match.group(1)
        if code.startswith("IPBL"):
            return "blocked"
        if code.startswith("URLBL"):
            return "spamdetected"
        if code in _COX_CODES:
            return _COX_CODES[code]
    return _first_phrase(_COX_PHRASES, text)


#: Spectrum: (first code, last code, reason); "AUP#I" incoming, "AUP#O" outgoing.
_SPECTRUM_RANGES: tuple[tuple[int, int, str], ...] = (
    (1000, 1000, "blocked"), (1010, 1010, "rejected"), (1020, 1080, "rejected"),
    (1090, 1090, "systemerror"), (1100, 1150, "requireptr"), (1160, 1190, "policyviolation"),
    (1200, 1210, "blocked"), (1220, 1250, "blocked"), (1260, 1260, "networkerror"),
    (1300, 1340, "toomanyconn"), (1350, 1490, "speeding"), (1500, 1500, "rejected"),
    (1520, 1520, "rejected"), (1530, 1530, "mesgtoobig"), (1540, 1540, "speeding"),
    (1550, 1550, "speeding"), (1560, 1560, "policyviolation"), (1580, 1580, "speeding"),
)


def _spectrum(fact: Fact, text: str) -> str:
    match = re.search(r"AUP#[A-Za-z]*-?(\d{4})\b", fact.diagnostic)
    if not match:
        return ""
    code = int(match.group(1))
    for first, last, reason in _SPECTRUM_RANGES:
        if first <= code <= last:
            return reason
    return ""


_FRANCEPTT_CODES: dict[str, str] = {
    "101": "blocked", "102": "blocked", "103": "blocked", "104": "toomanyconn",
    "305": "securityerror", "401": "authfailure", "402": "securityerror", "403": "rejected",
    "405": "rejected", "415": "rejected", "416": "userunknown", "417": "mailboxfull",
    "420": "suspend", "421": "rejected", "426": "suspend", "505": "systemerror",
    "506": "spamdetected", "510": "blocked", "514": "mesgtoobig", "517": "authfailure",
    "630": "policyviolation", "999": "blocked",
}
_FRANCEPTT_CODE = re.compile(r"\b(?:lpn|ofr|ouk)(?:aaa)?(?:\d{3})?[-_]?(\d{3})\b")


def _franceptt(fact: Fact, text: str) -> str:
    codes = _FRANCEPTT_CODE.findall(fact.diagnostic.lower())
    if codes:
        return _FRANCEPTT_CODES.get(codes[-1], "")
    if "spf/dns de votre nom de domaine" in text:
        return "authfailure"
    return ""


#: Mimecast: (reason, reply code, wording).
_MIMECAST: tuple[tuple[str, int, str], ...] = (
    ("authfailure", 550, "spf sender invalid - envelope rejected"),
    ("authfailure", 550, "dkim sender invalid - envelope rejected"),
    ("authfailure", 550, "dmarc sender invalid - envelope rejected"),
    ("badreputation", 451, "internal resources are temporarily unavailable"),
    ("badreputation", 550, "local ct ip reputation - (reject)"),
    ("blocked", 421, "sender address blocked"),
    ("blocked", 451, "recipient temporarily unavailable"),
    ("blocked", 451, "ip temporarily blacklisted"),
    ("failedstarttls", 553, "this route requires encryption (tls)"),
    ("failedstarttls", 553, "this route requires tls version 1.2 or greater"),
    ("failedstarttls", 553, "this route requires high-strength ciphers"),
    ("failedstarttls", 554, "configuration is invalid for this certificate"),
    ("mesgtoobig", 554, "maximum email size exceeded"),
    ("networkerror", 451, "the incorrect hostname used for inbounds"),
    ("networkerror", 550, "the incorrect hostname used for inbounds"),
    ("networkerror", 554, "mail loop detected"),
    ("norelaying", 451, "open relay not allowed"), ("norelaying", 451, "open relay is not allowed"),
    ("notaccept", 451, "account inbounds disabled"),
    ("policyviolation", 550, "anti-spoofing policy - inbound not allowed"),
    ("policyviolation", 550, "rejected by header-based anti-spoofing policy"),
    ("policyviolation", 550, "message bounced due to content examination policy"),
    ("policyviolation", 554, "host network not allowed"),
    ("policyviolation", 554, "host network, not allowed"),
    ("rejected", 550, "administrative prohibition envelope blocked"),
    ("rejected", 550, "envelope blocked - user entry"),
    ("rejected", 550, "envelope blocked - user domain entry"),
    ("rejected", 550, "envelope rejected - block policy for envelope from address"),
    ("securityerror", 535, "incorrect authentication data"),
    ("securityerror", 550, "submitter failed to authenticate"),
    ("systemerror", 451, "unable to process connection at this time"),
    ("systemerror", 451, "message ended early"),
    ("systemerror", 451, "unable to process command"),
    ("toomanyconn", 451, "account service is temporarily unavailable"),
    ("toomanyconn", 452, "too many recipients"),
    ("toomanyconn", 550, "exceeding outbound thread limit"),
    ("userunknown", 501, "invalid address"),
    ("userunknown", 503, "user unknown"),
    ("userunknown", 550, "invalid recipient"),
    ("virusdetected", 554, "email rejected due to security policies"),
)


def _mimecast(fact: Fact, text: str) -> str:
    for reason, code, wording in _MIMECAST:
        if fact.reply_code == code and wording in text:
            return reason
    return ""


_MESSAGELABS: tuple[tuple[str, str], ...] = (
    ("securityerror", "please turn on smtp authentication in your mail client"),
    ("authfailure", "domain authentication fail"),
    ("badreputation", "connection rejected by policy"),
    ("blocked", "mail rejected because your ip is in the pbl"),
    ("blocked", "your ip address has been "),
    ("contenterror", "stray linefeeds in message"),
    ("failedstarttls", "tls/sslv3 connection required"),
    ("norelaying", " as a relay, "),
    ("notcompliantrfc", "550 requested action aborted [4]"),
    ("notcompliantrfc", "has detected that this message is not rfc 5322"),
    ("rejected", "sender envelope domain not allowed for sender ip address"),
    ("rejected", "your domain has been blocked"),
    ("rejected", "your email address has been blocked"),
    ("rejected", "your envelope sender is in my badmailfrom list"),
    ("rejected", "your email address has been blacklisted"),
    ("rejected", "your domain has been blacklisted"),
    ("spamdetected", "message filtered"), ("spamdetected", "filtered by outbound scanning"),
    ("toomanyconn", "too many recipients received this hour"),
    ("toomanyconn", "too many messages"),
    ("userunknown", "no such user"), ("userunknown", "invalid recipient"),
    ("userunknown", "mailbox is not allowed"),
)

_YAHOOINC: tuple[tuple[str, str], ...] = (
    ("authfailure", "yahoo requires all senders to authenticate with either spf or dkim"),
    ("blocked", " because the ip is in spamhaus's list;"),
    ("blocked", "not accepted from ip addresses on spamhaus xbl"),
    ("norelaying", "relaying denied for "),
    ("notcompliantrfc", "headers are not rfc compliant"),
    ("policyviolation", "not accepted for policy reasons"),
    # "[TSS04] … temporarily deferred due to unexpected volume or user complaints": Yahoo
    # answers so for senders without SPF/DKIM/DMARC as well, so it is about our sender.
    ("rejected", "temporarily deferred due to unexpected volume or user complaints"),
    ("rejected", "due to unresolvable rfc.5321 domain"),
    ("rejected", " will be permanently deferred"),
    ("speeding", "user is receiving mail too quickly"),
    ("suspend", " is no longer valid."), ("suspend", "this mailbox is disabled"),
    ("syntaxerror", "syntax error in parameters or arguments"),
    ("toomanyconn", "max message per connection reached"),
    ("userunknown", "dd this user doesn't have a "), ("userunknown", "mailbox not found"),
)

_AOL: tuple[tuple[str, str], ...] = (
    ("hostunknown", "host or domain name not found"),
    # AOL's relay reports a domain whose MX is a null MX (".") this way.
    ("notaccept", "type=mx: malformed or unexpected name server reply"),
)


def _first_phrase(table: tuple[tuple[str, str], ...], text: str) -> str:
    for reason, wording in table:
        if wording in text:
            return reason
    return ""


RULES: dict[str, Callable[[Fact, str], str]] = {
    "aol": lambda fact, text: _first_phrase(_AOL, text),
    "cox": _cox,
    "franceptt": _franceptt,
    "messagelabs": lambda fact, text: _first_phrase(_MESSAGELABS, text),
    "mimecast": _mimecast,
    "spectrum": _spectrum,
    "yahooinc": lambda fact, text: _first_phrase(_YAHOOINC, text),
}


def provider_of(fact: Fact, hosts: list[str]) -> str:
    """The provider whose rules apply: by recipient domain, then remote MTA, then other hosts."""
    domain = (fact.recipient or "").rsplit("@", 1)[-1].lower()
    remote = (fact.remote_mta or "").lower()
    for candidates in ([domain], [remote], hosts):
        for host in candidates:
            if not host:
                continue
            for name, suffixes in HOSTS.items():
                if any(host == s.lstrip(".") or host.endswith(s if s.startswith(".") else "." + s)
                       for s in suffixes):
                    return name
    return ""


def provider_rule(fact: Fact, text: str, hosts: list[str]) -> str:
    """A reason from the provider's own codes or wordings, or "".

    ``text`` is the lower-cased diagnostic; ``hosts`` the host names named in the bounce.
    """
    name = provider_of(fact, hosts)
    if not name or not fact.diagnostic:
        return ""
    return RULES[name](fact, text)
