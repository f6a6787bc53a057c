"""Tests for worker.contact.addresses and worker.contact.carriers: pure functions, no services needed.

They pin down what staff will see when a patron's address is refused, the two forms a
legacy carrier address takes (display vs. envelope), that typo hints never fire on real
domains, and that the phone advice always names the sender address and its domain.
"""

from __future__ import annotations

import pytest
from email_validator import EmailUndeliverableError

import worker.contact.addresses as addresses
from worker.contact.addresses import (
    KNOWN_DOMAINS,
    LEGACY_DOMAINS,
    Address,
    carrier_of,
    normalise_address,
    suggest_domain,
)
from worker.masking import mask_address
from worker.contact.carriers import (
    CARRIERS,
    DEFAULT_SENDER,
    allow_sender_advice,
    carrier_label,
)
from worker.errors import AddressError

# --------------------------------------------------------------------------------------
# Refusals: (input, a fragment the staff-readable message must contain)
# --------------------------------------------------------------------------------------

INVALID: list[tuple[str, str]] = [
    ("a@b.jp\r\nBcc: x@y.jp", "line break"),
    ("taro@docomo.ne.jp\n", "line break"),  # even trailing: never stripped silently
    ("taro@docomo.ne.jp\rRCPT TO:<evil@x.jp>", "line break"),
    ("a" * 290 + "@docomo.ne.jp", "too long (303 characters; at most 254)"),
    ("t" * 65 + "@docomo.ne.jp", "part before @ is too long (65"),
    ("", "empty"),
    ("   ", "empty"),
    ("\u3000\u3000", "empty"),
    ("taro@@docomo.ne.jp", "more than one @"),
    ("taro@docomo.ne.jp@ezweb.ne.jp", "more than one @"),
    ('"a@b"@docomo.ne.jp', "more than one @"),
    ("taro.docomo.ne.jp", "no @"),
    ("山田太郎 <taro@docomo.ne.jp>", "without a name"),
    ('"Yamada, Taro" <taro@docomo.ne.jp>', "without a name"),
    ("<taro@docomo.ne.jp>", "angle brackets"),
    ("taro@docomo.ne.jp, hanako@ezweb.ne.jp", "Only one address"),
    ("taro@docomo.ne.jp;hanako@ezweb.ne.jp", "Only one address"),
    ("taro..yamada@gmail.com", "only accepted for old docomo/au"),
    (".taro@softbank.ne.jp", "only accepted for old docomo/au"),
    (".taro@gmail.com", "only accepted for old docomo/au"),
    ("taro.@yahoo.co.jp", "only accepted for old docomo/au"),
    ("taro@[192.168.0.1]", "IP address"),
    ("taro@localhost", "with a dot"),
    ("taro@localhost.localdomain", "local machine name"),
    ("taro@docomo", "with a dot"),
    ("山田@example.jp", "Only ASCII"),
    ("tarō@docomo.ne.jp", "Only ASCII"),
    ("ta\x00ro@docomo.ne.jp", "U+0000"),
    ("ta\tro@docomo.ne.jp", "U+0009"),
    ("ta\u200bro@docomo.ne.jp", "U+200B"),  # zero-width space pasted from a web page
    ("taro yamada@docomo.ne.jp", "space"),
    ("taro\u3000yamada@docomo.ne.jp", "space"),  # ideographic space inside
    ("@docomo.ne.jp", "Nothing before the @"),
    ("taro@", "Nothing after the @"),
    ('ta"ro@docomo.ne.jp', "quotes or backslashes"),
    ('"ta\\"ro"@docomo.ne.jp', "quotes or backslashes"),
    ("taro..ya(ma)da@docomo.ne.jp", "not allowed ('(', ')')"),
    ("...@docomo.ne.jp", "no letters or digits"),
    (".t" + "x" * 62 + "@docomo.ne.jp", "too long once quoted (66"),
    ("taro@docomo.ne.jp.", "Not a valid address"),
    ("taro@docomo..ne.jp", "two periods"),
    ("taro@ex_ample.jp", "invalid characters"),
    ("taro@foo.test", "special-use"),
    ("taro@-docomo.ne.jp", "hyphen"),
    ("taro@123.45.67.89", "Not a valid address"),
]


@pytest.mark.parametrize(("raw", "fragment"), INVALID, ids=[repr(r)[:40] for r, _ in INVALID])
def test_invalid_addresses_are_refused_with_a_readable_reason(raw: str, fragment: str) -> None:
    with pytest.raises(AddressError) as info:
        normalise_address(raw)
    message = str(info.value)
    assert fragment in message
    assert len(message) < 260, "messages must stay short enough to read out"
    assert "\r" not in message and "\n" not in message


def test_only_spaces_are_stripped_other_whitespace_is_refused() -> None:
    # A trailing CR/LF or tab is refused, not stripped: it never belongs in an address,
    # and silently dropping it would hide an injection attempt from staff.
    assert normalise_address("  taro@docomo.ne.jp  ").display == "taro@docomo.ne.jp"
    with pytest.raises(AddressError, match="line break"):
        normalise_address("taro@docomo.ne.jp\r\n")
    with pytest.raises(AddressError, match="U\\+0009"):
        normalise_address("taro@docomo.ne.jp\t")


def test_refusal_messages_never_echo_injected_text() -> None:
    with pytest.raises(AddressError) as info:
        normalise_address("a@b.jp\r\nBcc: evil@attacker.example")
    assert "attacker" not in str(info.value)
    assert "Bcc" not in str(info.value)


def test_at_least_twenty_distinct_invalid_cases() -> None:
    assert len({raw for raw, _ in INVALID}) >= 20


def test_legacy_pattern_at_a_typo_domain_suggests_the_carrier() -> None:
    with pytest.raises(AddressError, match=r"Did you mean taro\.\.yamada@docomo\.ne\.jp\?"):
        normalise_address("taro..yamada@docomo.co.jp")


def test_missing_tld_suggests_a_known_domain() -> None:
    with pytest.raises(AddressError, match=r"Did you mean gmail\.com\?"):
        normalise_address("taro@gmail")


def test_only_address_error_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("resolver exploded")

    monkeypatch.setattr(addresses, "validate_email", boom)
    with pytest.raises(AddressError, match="could not be checked"):
        normalise_address("taro@docomo.ne.jp")


@pytest.mark.parametrize("raw", [None, 12345, b"taro@docomo.ne.jp"])
def test_non_string_input_is_an_address_error(raw: object) -> None:
    with pytest.raises(AddressError):
        normalise_address(raw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Valid addresses
# --------------------------------------------------------------------------------------


def test_full_width_input_becomes_ascii() -> None:
    a = normalise_address("ＴＡＲＯ＠ｄｏｃｏｍｏ．ｎｅ．ｊｐ")
    assert a.display == "TARO@docomo.ne.jp"
    assert a.envelope == "TARO@docomo.ne.jp"
    assert a.carrier == "docomo"
    assert a.legacy is False


def test_full_width_digits_and_symbols() -> None:
    a = normalise_address("ｔａｒｏ＿１２３＋ｌｉｂ＠ｅｚｗｅｂ．ｎｅ．ｊｐ")
    assert a.display == "taro_123+lib@ezweb.ne.jp"


def test_ideographic_spaces_around_are_stripped() -> None:
    a = normalise_address("\u3000 taro@docomo.ne.jp\u3000\u00a0")
    assert a.display == "taro@docomo.ne.jp"


def test_domain_is_lowercased_local_part_case_kept() -> None:
    a = normalise_address("Taro.Yamada@DoCoMo.NE.JP")
    assert a.display == "Taro.Yamada@docomo.ne.jp"
    assert a.key == "Taro.Yamada@docomo.ne.jp"
    assert a.domain == "docomo.ne.jp"


def test_plain_address_has_identical_forms() -> None:
    a = normalise_address("hanako-1980@gmail.com")
    assert a == Address(
        display="hanako-1980@gmail.com",
        envelope="hanako-1980@gmail.com",
        key="hanako-1980@gmail.com",
        domain="gmail.com",
        carrier=None,
        legacy=False,
        typo_suggestion=None,
    )


@pytest.mark.parametrize(
    ("raw", "display", "envelope", "carrier"),
    [
        ("taro..yamada@docomo.ne.jp", "taro..yamada@docomo.ne.jp", '"taro..yamada"@docomo.ne.jp', "docomo"),
        ("docomo-ab1234yz.@docomo.ne.jp", "docomo-ab1234yz.@docomo.ne.jp", '"docomo-ab1234yz."@docomo.ne.jp', "docomo"),
        ("hanako.@ezweb.ne.jp", "hanako.@ezweb.ne.jp", '"hanako."@ezweb.ne.jp', "au"),
        (".hanako@EZWEB.NE.JP", ".hanako@ezweb.ne.jp", '".hanako"@ezweb.ne.jp', "au"),
        ("a..b...c.@au.com", "a..b...c.@au.com", '"a..b...c."@au.com', "au"),
        ("iphone..user@i.softbank.jp", "iphone..user@i.softbank.jp", '"iphone..user"@i.softbank.jp', "softbank"),
        ("biz..user@biz.ezweb.ne.jp", "biz..user@biz.ezweb.ne.jp", '"biz..user"@biz.ezweb.ne.jp', "au"),
        # the quoted form typed by a careful patron or sent by the ILS is the same mailbox
        ('"taro..yamada"@docomo.ne.jp', "taro..yamada@docomo.ne.jp", '"taro..yamada"@docomo.ne.jp', "docomo"),
        # full-width legacy input
        ("ｔａｒｏ．．ｙａｍａｄａ＠ｄｏｃｏｍｏ．ｎｅ．ｊｐ", "taro..yamada@docomo.ne.jp", '"taro..yamada"@docomo.ne.jp', "docomo"),
    ],
)
def test_legacy_carrier_addresses_are_accepted_and_quoted(
    raw: str, display: str, envelope: str, carrier: str
) -> None:
    a = normalise_address(raw)
    assert a.legacy is True
    assert a.display == display
    assert a.envelope == envelope
    assert a.key == display
    assert a.carrier == carrier
    assert a.typo_suggestion is None


def test_quoted_ordinary_address_is_unquoted() -> None:
    a = normalise_address('"taro"@gmail.com')
    assert (a.display, a.envelope, a.legacy) == ("taro@gmail.com", "taro@gmail.com", False)


def test_legacy_envelope_is_valid_for_email_validator() -> None:
    from email_validator import validate_email

    a = normalise_address("taro..yamada@docomo.ne.jp")
    v = validate_email(a.envelope, allow_quoted_local=True, check_deliverability=False)
    assert v.normalized == a.envelope


def test_legacy_domains_are_a_documented_narrow_set() -> None:
    assert LEGACY_DOMAINS == {"docomo.ne.jp", "ezweb.ne.jp", "au.com", "biz.ezweb.ne.jp", "i.softbank.jp"}


def test_limits_are_inclusive() -> None:
    local = "t" * 64
    assert normalise_address(f"{local}@docomo.ne.jp").display == f"{local}@docomo.ne.jp"
    legacy_local = "t" * 60 + ".."  # 62 + 2 quotes = 64 on the wire
    assert normalise_address(f"{legacy_local}@docomo.ne.jp").envelope == f'"{legacy_local}"@docomo.ne.jp'
    domain = ".".join(["a" * 60, "b" * 60, "c" * 60, "d" * 58]) + ".jp"  # 241 characters
    addr = "t" * (254 - len(domain) - 1) + "@" + domain
    assert len(addr) == 254
    assert normalise_address(addr).display == addr


def test_internationalised_domain_goes_on_the_wire_as_a_label() -> None:
    a = normalise_address("taro@ドコモ.jp")
    assert a.display == "taro@ドコモ.jp"
    assert a.envelope == "taro@xn--tck0b2d.jp"
    assert a.key == "taro@xn--tck0b2d.jp"


def test_ideographic_full_stop_in_the_domain_is_a_dot() -> None:
    assert normalise_address("taro@docomo。ne。jp").display == "taro@docomo.ne.jp"


def test_check_dns_is_passed_to_email_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = addresses.validate_email

    def spy(candidate: str, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append(bool(kwargs["check_deliverability"]))
        if kwargs["check_deliverability"]:
            raise EmailUndeliverableError("The domain name nowhere.example does not exist.")
        return real(candidate, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(addresses, "validate_email", spy)
    assert normalise_address("taro@docomo.ne.jp").display == "taro@docomo.ne.jp"
    with pytest.raises(AddressError, match="does not accept mail"):
        normalise_address("taro@docomo.ne.jp", check_dns=True)
    with pytest.raises(AddressError, match="does not accept mail"):
        normalise_address("taro..yamada@docomo.ne.jp", check_dns=True)
    assert seen == [False, True, True]


# --------------------------------------------------------------------------------------
# Typo suggestions
# --------------------------------------------------------------------------------------

TYPOS: list[tuple[str, str]] = [
    ("docomo.co.jp", "docomo.ne.jp"),
    ("docomo.ne.jo", "docomo.ne.jp"),
    ("docomo.nejp", "docomo.ne.jp"),
    ("docomo.jp", "docomo.ne.jp"),
    ("docom.ne.jp", "docomo.ne.jp"),
    ("ezweb.co.jp", "ezweb.ne.jp"),
    ("ezweb.ne", "ezweb.ne.jp"),
    ("ezwb.ne.jp", "ezweb.ne.jp"),
    ("softbank.co.jp", "softbank.ne.jp"),
    ("softbank.jp", "softbank.ne.jp"),
    ("i.softbank.co.jp", "i.softbank.jp"),
    ("i.sofbank.jp", "i.softbank.jp"),
    ("gmail.co.jp", "gmail.com"),
    ("gmial.com", "gmail.com"),
    ("gmai.com", "gmail.com"),
    ("gmail.con", "gmail.com"),
    ("gmail.co", "gmail.com"),
    ("yahoo.co.jo", "yahoo.co.jp"),
    ("yaho.co.jp", "yahoo.co.jp"),
    ("yahooo.co.jp", "yahoo.co.jp"),
    ("yhaoo.co.jp", "yahoo.co.jp"),
    ("yahoo.jp", "yahoo.co.jp"),
    ("icloud.co.jp", "icloud.com"),
    ("icoud.com", "icloud.com"),
    ("outlook.co.jp", "outlook.jp"),
    ("biglobe.co.jp", "biglobe.ne.jp"),
    ("ocn.co.jp", "ocn.ne.jp"),
]


@pytest.mark.parametrize(("domain", "suggestion"), TYPOS)
def test_typo_domains_get_a_suggestion(domain: str, suggestion: str) -> None:
    a = normalise_address(f"taro@{domain}")
    assert a.typo_suggestion == f"taro@{suggestion}"
    # a hint for staff, not a refusal: the address itself is kept as typed
    assert a.display == f"taro@{domain}"


REAL_DOMAINS = [
    "hotmail.co.jp", "hotmail.com", "yahoo.co.jp", "yahoo.ne.jp", "yahoo.com",
    "docomo.ne.jp", "ezweb.ne.jp", "au.com", "biz.ezweb.ne.jp", "softbank.ne.jp",
    "i.softbank.jp", "d.vodafone.ne.jp", "disney.ne.jp", "ymobile.ne.jp", "y-mobile.ne.jp",
    "rakumail.jp", "uqmobile.jp", "icloud.com", "me.com", "mac.com", "gmail.com",
    "googlemail.com", "outlook.jp", "outlook.com", "live.jp", "nifty.com", "biglobe.ne.jp",
    "ocn.ne.jp", "abox.ocn.ne.jp", "so-net.ne.jp", "khaki.plala.or.jp", "jcom.home.ne.jp",
    "ybb.ne.jp", "mail.com", "email.com", "ymail.com", "city.omitama.ibaraki.jp",
    "pref.ibaraki.lg.jp", "example.co.jp",
]


@pytest.mark.parametrize("domain", REAL_DOMAINS)
def test_real_domains_are_never_flagged(domain: str) -> None:
    assert normalise_address(f"taro@{domain}").typo_suggestion is None


def test_no_known_domain_is_flagged() -> None:
    for domain in KNOWN_DOMAINS:
        assert suggest_domain(domain) is None, domain


def test_short_domains_are_not_fuzzy_matched() -> None:
    # one letter away from au.com / me.com, but plausibly real: no hint
    assert suggest_domain("ai.com") is None
    assert suggest_domain("mo.com") is None


# --------------------------------------------------------------------------------------
# Carriers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "carrier"),
    [
        ("docomo.ne.jp", "docomo"),
        ("DOCOMO.NE.JP", "docomo"),
        ("docomo.ne.jp.", "docomo"),
        ("ezweb.ne.jp", "au"),
        ("au.com", "au"),
        ("biz.ezweb.ne.jp", "au"),
        ("biz.au.com", "au"),
        ("softbank.ne.jp", "softbank"),
        ("i.softbank.jp", "softbank"),
        ("t.vodafone.ne.jp", "softbank"),
        ("disney.ne.jp", "softbank"),
        ("rakumail.jp", "rakuten"),
        ("ymobile.ne.jp", "ymobile"),
        ("y-mobile.ne.jp", "ymobile"),
        ("gmail.com", None),
        ("icloud.com", None),
        ("yahoo.ne.jp", None),
        ("docomo.co.jp", None),
        ("notdocomo.ne.jp", None),
        ("softbank.jp", None),
        ("", None),
    ],
)
def test_carrier_of(domain: str, carrier: str | None) -> None:
    assert carrier_of(domain) == carrier


def test_address_carries_its_carrier() -> None:
    assert normalise_address("x@i.softbank.jp").carrier == "softbank"
    assert normalise_address("x@gmail.com").carrier is None


# --------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("taro@docomo.ne.jp", "t***@docomo.ne.jp"),
        ("Taro.Yamada@DOCOMO.NE.JP", "T***@docomo.ne.jp"),
        ('"taro..yamada"@docomo.ne.jp', "t***@docomo.ne.jp"),
        ('"a@b"@x.jp', "a***@x.jp"),
        ("t@docomo.ne.jp", "t***@docomo.ne.jp"),
        ("@docomo.ne.jp", "***@docomo.ne.jp"),
        ("", "***"),
        ("   ", "***"),
        ("no-at-sign", "n***"),
        ("a@b.jp\r\nBcc: x@y.jp", "a***@?"),
        ("\x00x@y.jp", "?***@y.jp"),
        ("山田@example.jp", "山***@example.jp"),
        ("ＴＡＲＯ＠ｄｏｃｏｍｏ．ｎｅ．ｊｐ", "T***@docomo.ne.jp"),
    ],
)
def test_mask_address(raw: str, masked: str) -> None:
    assert mask_address(raw) == masked


def test_mask_never_reveals_more_than_one_local_character() -> None:
    for raw in ["secretname@docomo.ne.jp", '"secret..name"@docomo.ne.jp', "secretname"]:
        assert "ecret" not in mask_address(raw)


def test_mask_accepts_non_strings() -> None:
    assert mask_address(None) == "***"  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Carrier advice
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("carrier", [*CARRIERS, None, "unknown-carrier"])
def test_advice_names_sender_and_domain(carrier: str | None) -> None:
    text = allow_sender_advice(carrier, DEFAULT_SENDER)
    assert "lib@city.omitama.ibaraki.jp" in text
    assert "city.omitama.ibaraki.jp" in text.replace("lib@city.omitama.ibaraki.jp", "")
    assert "ください" in text  # polite request form


def test_advice_uses_the_configured_sender() -> None:
    text = allow_sender_advice("docomo", "notice@lib.example.jp")
    assert "notice@lib.example.jp" in text
    assert "lib.example.jp" in text.replace("notice@lib.example.jp", "")
    assert "omitama" not in text


@pytest.mark.parametrize(
    ("carrier", "words"),
    [
        ("docomo", ["受信リスト設定", "My docomo"]),
        ("au", ["迷惑メールフィルター", "受信リスト"]),
        ("softbank", ["My SoftBank", "迷惑メール対策", "受信許可リスト"]),
        ("ymobile", ["My Y!mobile", "受信許可リスト"]),
        ("rakuten", ["楽メール"]),
        (None, ["迷惑メールフォルダ"]),
    ],
)
def test_advice_names_the_right_screen(carrier: str | None, words: list[str]) -> None:
    text = allow_sender_advice(carrier, DEFAULT_SENDER)
    for word in words:
        assert word in text


def test_advice_refuses_a_sender_that_is_not_an_address() -> None:
    with pytest.raises(ValueError):
        allow_sender_advice("docomo", "not an address")


@pytest.mark.parametrize(
    ("carrier", "label"),
    [("docomo", "ドコモ"), ("au", "au"), ("softbank", "ソフトバンク"),
     ("rakuten", "楽天モバイル"), ("ymobile", "ワイモバイル")],
)
def test_carrier_label(carrier: str, label: str) -> None:
    assert carrier_label(carrier) == label


def test_generic_label_for_unknown() -> None:
    assert "Gmail" in carrier_label(None)
    assert carrier_label("nonsense") == carrier_label(None)


def test_every_detected_carrier_has_advice_and_label() -> None:
    for domain in ["docomo.ne.jp", "ezweb.ne.jp", "softbank.ne.jp", "rakumail.jp", "ymobile.ne.jp"]:
        carrier = carrier_of(domain)
        assert carrier in CARRIERS
        assert carrier_label(carrier) != carrier_label(None)
