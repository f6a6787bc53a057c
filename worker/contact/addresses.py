"""Patron e-mail addresses: normalise, validate, classify (masking: worker/masking.py).

Pure functions, no I/O (except the optional DNS check inside email-validator when
``check_dns=True``), so the registration flow, the mailer, the bounce matcher and the
staff views all agree on what an address is.

Why this is more than a call to ``email_validator.validate_email``:

* Patrons type on Japanese keyboards: full-width ``ＴＡＲＯ＠ｄｏｃｏｍｏ．ｎｅ．ｊｐ`` and
  ideographic spaces are common. email-validator does not NFKC-normalise (it accepts the
  full-width form as an SMTPUTF8 address), so we normalise first.
* Until April 2009 docomo and au let customers pick local parts that break RFC 5322
  (``taro..yamada@docomo.ne.jp``, ``hanako.@ezweb.ne.jp``). Patrons still use them. The
  only valid way to write such a mailbox is with a quoted local part
  (``"taro..yamada"@docomo.ne.jp``, RFC 5322 §3.4.1: the quotes are not part of the
  address), so we keep two forms: ``display`` (unquoted, for people and matching) and
  ``envelope`` (quoted when needed, for RCPT TO and the To header).
* A typo in the domain (``docomo.co.jp``) is a valid address that silently never arrives.
  We flag likely typos for staff instead of refusing them, because the patron is on the
  phone with staff anyway before the address is approved.

Every refusal is an :class:`worker.errors.AddressError` whose message a member of staff
can read. Messages never echo the raw input (it may carry header-injection text); they
name the offending characters instead.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from email_validator import (
    EmailNotValidError,
    EmailUndeliverableError,
    ValidatedEmail,
    validate_email,
)

from worker.contact.domains import (KNOWN_DOMAINS, LEGACY_DOMAINS, LEGACY_LOCAL, clean_domain, carrier_of,
                            suggest_domain)
from worker.errors import AddressError

__all__ = [
    "Address",
    "KNOWN_DOMAINS",
    "LEGACY_DOMAINS",
    "carrier_of",
    "normalise_address",
    "suggest_domain",
]

#: RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets.
MAX_ADDRESS_LENGTH = 254
#: RFC 5321 §4.5.3.1.1.
MAX_LOCAL_LENGTH = 64

# --------------------------------------------------------------------------------------
# Result type
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """A validated patron address in the forms each consumer needs.

    ``display`` is what staff and patrons see and what we compare on; ``envelope`` is
    what goes on the wire (RCPT TO and To header) — they differ only for legacy carrier
    addresses (quoted local part) and internationalised domains (A-label on the wire);
    ``key`` is the canonical form bounces are matched on, because flufl.bounce reports the
    quoted form and aiosmtpd the unquoted one.
    """

    display: str
    envelope: str
    key: str
    domain: str
    carrier: str | None
    legacy: bool
    typo_suggestion: str | None


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def normalise_address(raw: str, *, check_dns: bool = False) -> Address:
    """Validate a patron-entered address and return its normalised forms.

    Raises :class:`AddressError` (and nothing else) with a short English reason staff can
    read to the patron. ``check_dns`` turns on email-validator's MX/A lookup; it is off by
    default because registration must work offline and in tests (offline, the lookup
    rejects every domain).
    """
    try:
        return _normalise(raw, check_dns=check_dns)
    except AddressError:
        raise
    except Exception as exc:  # noqa: BLE001 - the contract is "AddressError, never else"
        raise AddressError(f"The address could not be checked ({type(exc).__name__}).") from exc


# --------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------


def _normalise(raw: str, *, check_dns: bool) -> Address:
    """Do the work of :func:`normalise_address`; may raise anything, the caller wraps."""
    if not isinstance(raw, str):
        raise AddressError("The address is missing.")
    # NFKC turns the ideographic space U+3000 and NBSP into U+0020, so stripping plain
    # spaces covers them. Only spaces are stripped: a CR, LF or tab anywhere — even at
    # the end — is refused, because it never belongs in an address.
    text = unicodedata.normalize("NFKC", raw)
    _refuse_bad_characters(text)
    text = text.strip(" ")
    if not text:
        raise AddressError("The address is empty.")
    if len(text) > MAX_ADDRESS_LENGTH:
        raise AddressError(
            f"The address is too long ({len(text)} characters; at most {MAX_ADDRESS_LENGTH})."
        )
    _refuse_wrong_shape(text)

    local, _, domain = text.rpartition("@")
    local = _unquote(local)
    if "@" in local:
        raise AddressError("The address has more than one @.")
    if not local:
        raise AddressError("Nothing before the @.")
    if not domain:
        raise AddressError("Nothing after the @.")
    if len(local) > MAX_LOCAL_LENGTH:
        raise AddressError(
            f"The part before @ is too long ({len(local)} characters; at most {MAX_LOCAL_LENGTH})."
        )
    non_ascii = [ch for ch in local if ord(ch) > 127]
    if non_ascii:
        # SMTPUTF8 policy: refused. Japanese carriers and the library's relay cannot be
        # assumed to support SMTPUTF8 (RFC 6531), and such mail would bounce or vanish.
        shown = ", ".join(f"'{ch}'" for ch in dict.fromkeys(non_ascii))
        raise AddressError(
            f"Only ASCII letters, digits and symbols are allowed before the @ (found {shown})."
        )
    if domain.startswith("["):
        raise AddressError("An IP address after the @ is not accepted; use a domain name.")
    domain = domain.replace("\u3002", ".")  # ideographic full stop typed as a dot
    if "." not in domain:
        hint = _hint(suggest_domain(domain))
        raise AddressError(f"The part after @ must be a domain with a dot, such as docomo.ne.jp.{hint}")
    labels = clean_domain(domain).split(".")
    if "localhost" in labels or labels[-1] == "localdomain":
        # email-validator refuses bare "localhost" but not "localhost.localdomain".
        raise AddressError("The part after @ is a local machine name, not a mail domain.")

    if _has_legacy_dots(local):
        return _legacy_address(local, domain, check_dns=check_dns)
    return _standard_address(local, domain, check_dns=check_dns)


def _standard_address(local: str, domain: str, *, check_dns: bool) -> Address:
    """Validate an RFC-conforming address with email-validator's defaults, no quoting."""
    v = _validate(f"{local}@{domain}", check_dns=check_dns, quoted=False)
    ascii_domain = (v.ascii_domain or v.domain).lower()
    local_part = v.local_part
    return Address(
        display=f"{local_part}@{v.domain}",
        envelope=f"{v.ascii_local_part or local_part}@{ascii_domain}",
        key=f"{local_part}@{ascii_domain}",
        domain=ascii_domain,
        carrier=carrier_of(ascii_domain),
        legacy=False,
        typo_suggestion=_typo_address(local_part, ascii_domain),
    )


def _legacy_address(local: str, domain: str, *, check_dns: bool) -> Address:
    """Accept a pre-2009 carrier local part (``..``, leading/trailing dot), quoted.

    Follows the recipe in library-facts §3: only for :data:`LEGACY_DOMAINS`, only atext
    and dots, then re-validated in quoted form with ``allow_quoted_local=True``.
    """
    lowered = clean_domain(domain)
    if lowered not in LEGACY_DOMAINS:
        suggestion = suggest_domain(lowered)
        hint = (
            f" Did you mean {local}@{suggestion}?"
            if suggestion in LEGACY_DOMAINS
            else ""
        )
        raise AddressError(
            "A dot at the start or end of the part before @, or two dots in a row, is only "
            "accepted for old docomo/au/SoftBank iPhone addresses (docomo.ne.jp, ezweb.ne.jp, "
            f"au.com, i.softbank.jp).{hint}"
        )
    if not LEGACY_LOCAL.match(local):
        bad = ", ".join(
            f"'{ch}'" for ch in dict.fromkeys(ch for ch in local if not LEGACY_LOCAL.match(ch))
        )
        raise AddressError(f"The part before @ contains characters that are not allowed ({bad}).")
    if not any(ch.isalnum() for ch in local):
        raise AddressError("The part before @ has no letters or digits.")
    if len(local) + 2 > MAX_LOCAL_LENGTH:
        # RFC 5321 counts the quotes: the quoted local part must fit in 64 octets.
        raise AddressError(
            f"The part before @ is too long once quoted ({len(local) + 2} characters; "
            f"at most {MAX_LOCAL_LENGTH})."
        )
    v = _validate(f'"{local}"@{lowered}', check_dns=check_dns, quoted=True)
    ascii_domain = (v.ascii_domain or v.domain).lower()
    envelope = f'"{local}"@{ascii_domain}'
    if len(envelope) > MAX_ADDRESS_LENGTH:
        raise AddressError(
            f"The address is too long once quoted ({len(envelope)} characters; at most "
            f"{MAX_ADDRESS_LENGTH})."
        )
    return Address(
        display=f"{local}@{ascii_domain}",
        envelope=envelope,
        key=f"{local}@{ascii_domain}",
        domain=ascii_domain,
        carrier=carrier_of(ascii_domain),
        legacy=True,
        typo_suggestion=None,
    )


def _validate(candidate: str, *, check_dns: bool, quoted: bool) -> ValidatedEmail:
    """Call email-validator with our fixed policy and translate its errors."""
    try:
        return validate_email(
            candidate,
            allow_smtputf8=False,
            allow_quoted_local=quoted,
            allow_domain_literal=False,
            allow_display_name=False,
            allow_empty_local=False,
            check_deliverability=check_dns,
        )
    except EmailUndeliverableError as exc:
        raise AddressError(f"The domain does not accept mail: {exc}") from exc
    except EmailNotValidError as exc:
        raise AddressError(f"Not a valid address: {exc}") from exc


def _refuse_bad_characters(text: str) -> None:
    """Refuse line breaks and every other control/invisible character.

    CR/LF first and by name, because that is the header/SMTP injection attempt staff
    should recognise; the rest (NUL, tab, zero-width space, BOM…) are named by code point.
    """
    if "\r" in text or "\n" in text or "\u2028" in text or "\u2029" in text:
        raise AddressError("The address contains a line break (CR/LF); this is never allowed.")
    bad = [ch for ch in text if unicodedata.category(ch)[0] == "C"]
    if bad:
        shown = ", ".join(f"U+{ord(ch):04X}" for ch in dict.fromkeys(bad))
        raise AddressError(f"The address contains a control or invisible character ({shown}).")


def _refuse_wrong_shape(text: str) -> None:
    """Refuse things that are not one bare address: names, brackets, lists, spaces, @."""
    if "<" in text or ">" in text:
        before = text.split("<", 1)[0].strip()
        if before:
            raise AddressError(
                "Enter only the address, without a name in front of it (e.g. taro@docomo.ne.jp)."
            )
        raise AddressError("Enter the address without angle brackets < >.")
    if "," in text or ";" in text:
        raise AddressError("Only one address can be registered (found a comma or semicolon).")
    if any(ch.isspace() for ch in text):
        raise AddressError("The address contains a space.")
    count = text.count("@")
    if count == 0:
        raise AddressError("The address has no @.")
    if count > 1 and not text.startswith('"'):
        raise AddressError("The address has more than one @.")


def _unquote(local: str) -> str:
    """Strip one pair of quotes around the local part (they are not part of the address).

    Only a plain quoted string is unwrapped; escapes and inner quotes are refused
    because no patron address needs them and they only widen the attack surface.
    """
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        inner = local[1:-1]
        if '"' in inner or "\\" in inner:
            raise AddressError("The part before @ contains quotes or backslashes.")
        return inner
    if '"' in local or "\\" in local:
        raise AddressError("The part before @ contains quotes or backslashes.")
    return local


def _has_legacy_dots(local: str) -> bool:
    """True for the dot patterns RFC 5322 forbids but pre-2009 carriers allowed."""
    return local.startswith(".") or local.endswith(".") or ".." in local


def _typo_address(local: str, domain: str) -> str | None:
    """Return the full suggested address for a likely domain typo, or None."""
    suggestion = suggest_domain(domain)
    return f"{local}@{suggestion}" if suggestion else None


def _hint(suggestion: str | None) -> str:
    """Format an optional ``Did you mean`` tail for refusal messages."""
    return f" Did you mean {suggestion}?" if suggestion else ""
