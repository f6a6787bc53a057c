"""Mail domains: Japanese carriers, pre-2009 legacy domains, known domains and typo hints (pure).

Tables and look-ups only; :mod:`worker.contact.addresses` uses them to classify an address.
"""

from __future__ import annotations

import re
from functools import lru_cache
import unicodedata

# --------------------------------------------------------------------------------------
# Carriers
# --------------------------------------------------------------------------------------

#: Mail domain → Japanese mobile carrier: the one list of carrier-mail domains.  A domain
#: also matches its subdomains (``d.vodafone.ne.jp`` → softbank). Only the carriers'
#: *carrier mail* domains are here: staff use it to name the filter screen the patron has to
#: open, and the bounce classifier (:mod:`worker.bounces.model`) to judge that a refusal
#: there is the subscriber's own filter.  ``None``: carrier mail whose screens we cannot
#: name, so the patron gets the generic advice, but a refusal is still their filter.
_CARRIER_DOMAINS: dict[str, str | None] = {
    # NTT docomo: i-mode / sp-mode / ドコモメール all use docomo.ne.jp.
    "docomo.ne.jp": "docomo",
    # KDDI au: ezweb.ne.jp (the original EZweb mail), au.com (offered from 2018-05-15,
    # to new users and to existing users who choose to move, keeping their local part),
    # and the business-line variants of both.
    "ezweb.ne.jp": "au",
    "au.com": "au",
    "biz.ezweb.ne.jp": "au",
    "biz.au.com": "au",
    # SoftBank: S!メール (softbank.ne.jp), Eメール(i) for iPhone/iPad (i.softbank.jp),
    # addresses kept from the Vodafone/J-Phone era ({d,h,t,c,r,k,n,s,q}.vodafone.ne.jp),
    # and Disney Mobile on SoftBank (disney.ne.jp), whose filters live in My SoftBank too.
    "softbank.ne.jp": "softbank",
    "i.softbank.jp": "softbank",
    "vodafone.ne.jp": "softbank",
    "disney.ne.jp": "softbank",
    # Rakuten Mobile's carrier mail 「楽メール」 uses rakumail.jp. (rakuten.jp is not
    # mapped: we could not confirm that it is a Rakuten Mobile mailbox domain.)
    "rakumail.jp": "rakuten",
    # Y!mobile MMS mail: ymobile.ne.jp; y-mobile.ne.jp was the domain of early Y!mobile
    # (ex-EMOBILE) lines. Y!mobile's Yahoo-based mail (yahoo.ne.jp) is web mail with
    # Yahoo! filters, so it gets the generic advice, not the carrier one.
    "ymobile.ne.jp": "ymobile",
    "y-mobile.ne.jp": "ymobile",
    # Older Y!mobile-family lines: EMOBILE (emobile.ne.jp, ymobile1.ne.jp) and WILLCOM PHS
    # (willcom.com, pdx.ne.jp, wcm.ne.jp), whose mail settings moved to My Y!mobile.
    "ymobile1.ne.jp": "ymobile",
    "emobile.ne.jp": "ymobile",
    "willcom.com": "ymobile",
    "pdx.ne.jp": "ymobile",
    "wcm.ne.jp": "ymobile",
    # UQ mobile's carrier mail (KDDI network, its own settings app): generic advice.
    "uqmobile.jp": None,
}

# --------------------------------------------------------------------------------------
# Legacy (pre-2009, RFC-violating) carrier local parts
# --------------------------------------------------------------------------------------

#: Domains where we accept local parts with a leading dot, a trailing dot or ``..``.
#: Kept narrow on purpose: anywhere else such an address is far more likely a typo than a
#: real mailbox, and accepting it would hide the mistake.
#:
#: * docomo.ne.jp — docomo's own page "特殊な形式のアドレス(RFC違反アドレス)のご利用について"
#:   (docomo.ne.jp/service/docomo_mail/rfc_add/) says customers from before 2009 may
#:   still hold ``docomo..ab1234yz@docomo.ne.jp`` / ``docomo-ab1234yz.@docomo.ne.jp``.
#: * ezweb.ne.jp — au allowed ``..`` and ``.@`` until spring 2009 (au's old address-change
#:   page warned that such addresses may fail with some providers; several FAQ pages list
#:   ezweb.ne.jp with docomo.ne.jp as the domains holding RFC-violating addresses).
#: * au.com — since 2018-05-15 au lets ezweb.ne.jp users move to au.com *keeping the
#:   local part*, so a pre-2009 ezweb local part can live on at au.com.
#: * biz.ezweb.ne.jp — the business-line EZweb mail ran on the same system and rules.
#: * i.softbank.jp — Eメール(i) started with the iPhone 3G in 2008, before the 2009
#:   clean-up; FAQ pages of mail senders (comipo, IRIS PLAZA) list @i.softbank.jp among
#:   the carrier domains with RFC-violating addresses created before March 2009.
#:
#: Deliberately NOT included: softbank.ne.jp, *.vodafone.ne.jp, disney.ne.jp — reports
#: from the period say SoftBank (ex J-Phone/Vodafone) addresses followed the RFC, and no
#: source we found lists them; ymobile / rakumail / biz.au.com — issued long after 2009.
LEGACY_DOMAINS: frozenset[str] = frozenset(
    {"docomo.ne.jp", "ezweb.ne.jp", "au.com", "biz.ezweb.ne.jp", "i.softbank.jp"}
)

#: Characters a legacy local part may contain: RFC 5322 atext plus the dot. Anything
#: else (spaces, quotes, backslashes, non-ASCII) is refused even at a legacy domain,
#: which is why we never turn on ``allow_quoted_local`` for arbitrary input.
LEGACY_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")

# --------------------------------------------------------------------------------------
# Typo suggestions
# --------------------------------------------------------------------------------------

#: Consumer mail domains in common use in Japan, most likely first (the order breaks
#: ties when several are equally close). A domain here — or a subdomain of one, such as
#: ``abc.ocn.ne.jp`` or ``jcom.home.ne.jp`` — is never flagged as a typo. Note the real
#: ones that look like typos: hotmail.co.jp, yahoo.ne.jp (Y!mobile), au.com, outlook.jp.
KNOWN_DOMAINS: tuple[str, ...] = (
    # carrier mail
    "docomo.ne.jp", "ezweb.ne.jp", "au.com", "softbank.ne.jp", "i.softbank.jp",
    "ymobile.ne.jp", "y-mobile.ne.jp", "rakumail.jp", "uqmobile.jp", "disney.ne.jp",
    "vodafone.ne.jp", "biz.ezweb.ne.jp", "biz.au.com",
    # free / web mail
    "gmail.com", "yahoo.co.jp", "yahoo.ne.jp", "icloud.com", "outlook.jp", "outlook.com",
    "hotmail.co.jp", "hotmail.com", "live.jp", "live.com", "msn.com", "me.com", "mac.com",
    "googlemail.com", "ymail.ne.jp", "yahoo.com", "ymail.com", "aol.com", "mail.com",
    "email.com", "proton.me", "protonmail.com", "excite.co.jp",
    # Japanese ISPs (several give customers a per-user subdomain)
    "nifty.com", "biglobe.ne.jp", "ocn.ne.jp", "so-net.ne.jp", "plala.or.jp",
    "dion.ne.jp", "ybb.ne.jp", "home.ne.jp", "zaq.ne.jp", "nttpc.ne.jp", "odn.ne.jp",
    "eonet.ne.jp", "commufa.jp", "enjoy.ne.jp", "wakwak.com", "asahi-net.or.jp",
)
_KNOWN_SET: frozenset[str] = frozenset(KNOWN_DOMAINS)

#: Misspellings that the generic rules below would miss or get wrong.
_EXPLICIT_TYPOS: dict[str, str] = {
    "docomo.jp": "docomo.ne.jp",
    "docomo.com": "docomo.ne.jp",
    "docomo.ne": "docomo.ne.jp",
    "ezweb.ne": "ezweb.ne.jp",
    "ezweb.jp": "ezweb.ne.jp",
    "ezweb.com": "ezweb.ne.jp",
    "au.ne.jp": "au.com",
    "au.co.jp": "au.com",
    "softbank.jp": "softbank.ne.jp",
    "softbank.com": "softbank.ne.jp",
    "i.softbank.co.jp": "i.softbank.jp",
    "i.softbank.ne.jp": "i.softbank.jp",
    "softbank.i.jp": "i.softbank.jp",
    "gmail.co.jp": "gmail.com",
    "gmail.jp": "gmail.com",
    "gmail.ne.jp": "gmail.com",
    "gmail.c": "gmail.com",
    "gmail.cm": "gmail.com",
    "icloud.co.jp": "icloud.com",
    "icloud.jp": "icloud.com",
    "outlook.co.jp": "outlook.jp",
    "outlook.ne.jp": "outlook.jp",
    "yahoo.jp": "yahoo.co.jp",
    "yahoo.co": "yahoo.co.jp",
    "yahoo.cojp": "yahoo.co.jp",
    "yahoo.co.jp.jp": "yahoo.co.jp",
    "yahoo.com.jp": "yahoo.co.jp",
    "hotmail.jp": "hotmail.co.jp",
}

#: Second-level suffixes people swap for one another (ne.jp / co.jp / or.jp / jp / com).
_SWAPPABLE_SUFFIXES: tuple[str, ...] = (".co.jp", ".ne.jp", ".or.jp", ".com", ".net", ".jp")


def _carrier_entry(domain: str) -> str | None:
    """The table key ``domain`` falls under (itself or a parent domain), else None."""
    name = clean_domain(domain)
    while name:
        if name in _CARRIER_DOMAINS:
            return name
        _, dot, rest = name.partition(".")
        name = rest if dot else ""
    return None


def carrier_of(domain: str) -> str | None:
    """Return the Japanese mobile carrier whose mail service owns ``domain``, else None.

    Staff need it to tell the patron which filter screen to open. Subdomains match their
    parent (``d.vodafone.ne.jp`` → ``softbank``). None also for carrier mail whose screens
    we cannot name (see :func:`is_carrier_domain`).
    """
    entry = _carrier_entry(domain)
    return _CARRIER_DOMAINS[entry] if entry is not None else None


def is_carrier_domain(domain: str) -> bool:
    """Whether ``domain`` (or a parent of it) is a Japanese mobile carrier's mail domain.

    The bounce classifier asks this of recipients and of the reporting carrier's servers
    (``mfsmax.docomo.ne.jp``, ``msmx.au.com``): a refusal there is the subscriber's filter.
    """
    return _carrier_entry(domain) is not None


@lru_cache(maxsize=4096)
def suggest_domain(domain: str) -> str | None:
    """Return the known mail domain ``domain`` is probably a typo of, or None.

    A hint for staff, not a verdict: a real but unusual domain may be close to a known
    one. Known domains and their subdomains are never flagged. Cached: the edit distance
    to every known domain takes ~7 ms, and most patrons share a few dozen domains.
    """
    name = clean_domain(domain)
    if not name or _is_known(name):
        return None
    explicit = _EXPLICIT_TYPOS.get(name)
    if explicit is not None:
        return explicit
    if "." not in name:  # "taro@docomo": the patron stopped after the provider's name
        return next((k for k in KNOWN_DOMAINS if k.split(".", 1)[0] == name), None)
    swapped = _suffix_swap(name)
    if swapped is not None:
        return swapped
    return _nearest_known(name)


def clean_domain(domain: str) -> str:
    """Lower-case, NFKC and strip a trailing dot, for table look-ups."""
    if not isinstance(domain, str):
        return ""
    return unicodedata.normalize("NFKC", domain).strip().lower().rstrip(".")


def _is_known(name: str) -> bool:
    """True when ``name`` is a known mail domain or a subdomain of one."""
    if name in _KNOWN_SET:
        return True
    return any(name.endswith("." + known) for known in _KNOWN_SET)


def _suffix_swap(name: str) -> str | None:
    """Suggest the known domain with the same name but another suffix (co.jp ↔ ne.jp …)."""
    for suffix in _SWAPPABLE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            base = name[: -len(suffix)]
            for known in KNOWN_DOMAINS:
                for other in _SWAPPABLE_SUFFIXES:
                    if other != suffix and known == base + other:
                        return known
            return None
    return None


def _nearest_known(name: str) -> str | None:
    """Return the closest known domain within a small edit distance, or None.

    The allowed distance grows with the length of the known domain: short names like
    au.com or me.com are never fuzzy-matched (too many real domains are one letter
    away), 8–11 characters allow one edit, longer names two.
    """
    best: str | None = None
    best_distance = 3
    for known in KNOWN_DOMAINS:
        if len(known) < 8:
            continue
        allowed = 1 if len(known) <= 11 else 2
        if abs(len(known) - len(name)) > allowed:
            continue
        distance = _osa_distance(name, known, limit=allowed)
        if distance <= allowed and distance < best_distance:
            best, best_distance = known, distance
    return best


def _osa_distance(a: str, b: str, *, limit: int) -> int:
    """Optimal-string-alignment edit distance (adjacent transpositions cost 1).

    ``gmial.com`` is one slip from ``gmail.com``, which plain Levenshtein counts as two.
    Returns ``limit + 1`` as soon as the distance is known to exceed ``limit``.
    """
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]
