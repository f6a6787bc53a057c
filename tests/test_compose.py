"""The notice as bytes: parsed back with the stdlib, in both charsets; nothing injectable."""

from __future__ import annotations

import email
import email.policy
from datetime import date, datetime

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from tests.helpers import hold_event, variant
from worker.compose import Composer, token_of
from worker.events import parse_event
from worker.carriers import CARRIERS
from worker.jdate import TOKYO, ja_date, ja_datetime
from worker.linewrap import MAIL_COLUMNS, columns, wrap
from worker.mime import build_text_message, check_addr_spec, encode_words


def parsed(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


@pytest.fixture
def composer(settings):
    return Composer(settings)


def notice(composer, settings, **over):
    ev = parse_event(hold_event(**over), set(settings.branches))
    return composer.hold_ready(ev, "taro@docomo.ne.jp", "0123abcd",
                               date=datetime(2026, 11, 29, 10, 5, tzinfo=TOKYO))


@pytest.mark.parametrize("d,expected", [
    (date(2026, 12, 5), "12月5日(土)"), (date(2026, 11, 30), "11月30日(月)"),
    (date(2027, 1, 3), "1月3日(日)"), (date(2026, 12, 2), "12月2日(水)"),
])
def test_japanese_dates_with_weekday(d, expected):
    assert ja_date(d) == expected


def test_datetimes_are_shown_in_tokyo():
    # 20:00 UTC on the 4th is 05:00 on the 5th in Tokyo
    from datetime import timezone
    assert ja_datetime(datetime(2026, 12, 4, 20, 0, tzinfo=timezone.utc)) == "12月5日(土) 05:00"


def test_notice_reads_right(composer, settings):
    n = notice(composer, settings, pickup_branch="tamari")
    msg = parsed(n.data)
    assert msg["From"].addresses[0].addr_spec == "lib@city.omitama.ibaraki.jp"
    assert msg["To"].addresses[0].addr_spec == "taro@docomo.ne.jp"
    assert msg["Message-ID"] == "<hold.0123abcd@city.omitama.ibaraki.jp>"
    assert msg["Date"].datetime.utcoffset().total_seconds() == 9 * 3600
    assert msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_content()
    for line in ["山田 太郎 様", "吾輩は猫である", "夏目漱石", "玉里図書館", "小美玉市高崎291-3",
                 "0299-26-9111", "12月5日(土)まで", "インターネットからは", "取り消しできません",
                 "送信専用", "lib@city.omitama.ibaraki.jp"]:
        assert line in body, line
    assert "著者：夏目漱石" in body and "利用者カードをお持ちください" in body
    # short lines that read well on a phone
    assert max(columns(line) for line in body.splitlines()) <= MAIL_COLUMNS


def test_without_name_greets_politely(composer, settings):
    body = parsed(notice(composer, settings, patron_name=None).data).get_content()
    assert body.startswith("ご利用者 様")
    assert "None" not in body


def test_author_line_only_when_given(composer, settings):
    ev = hold_event()
    ev["item"].pop("author")
    n = composer.hold_ready(parse_event(ev, set(settings.branches)), "a@b.jp", "t1")
    body = parsed(n.data).get_content()
    assert "夏目漱石" not in body and "None" not in body


def test_iso_2022_jp_is_selectable(settings):
    s = variant(settings, mail={"charset": "iso-2022-jp"})
    n = notice(Composer(s), s)
    assert b"charset=ISO-2022-JP" in n.data and b"Content-Transfer-Encoding: 7bit" in n.data
    assert all(b < 0x80 for b in n.data)  # 7-bit clean, as old phones expect
    msg = parsed(n.data)
    assert msg["Subject"] == "【小美玉市立図書館】ご予約の資料をご用意しました"
    assert "12月5日(土)まで" in msg.get_content()
    assert b"=?ISO-2022-JP?B?" in n.data


def test_iso_2022_jp_falls_back_to_utf8_for_characters_outside_jis(settings):
    s = variant(settings, mail={"charset": "iso-2022-jp"})
    n = notice(Composer(s), s, patron_name="髙橋 ①")
    msg = parsed(n.data)
    assert msg.get_content_charset() == "utf-8"
    assert "髙橋 ① 様" in msg.get_content()


def test_utf8_is_base64_and_lines_are_crlf(composer, settings):
    n = notice(composer, settings)
    assert b"Content-Transfer-Encoding: base64" in n.data
    assert b"\n" not in n.data.replace(b"\r\n", b"")
    assert max(len(line) for line in n.data.split(b"\r\n")) <= 78


@pytest.mark.parametrize("evil", [
    "猫\r\nBcc: evil@example.jp", "x\nTo: evil@example.jp", "\r\n\r\nbody takeover",
    "a" * 200 + "\r\nBcc: evil@example.jp",
])
def test_text_cannot_add_headers_or_recipients(evil):
    data = build_text_message(from_name=evil, from_addr="lib@city.omitama.ibaraki.jp",
                              to_addr="taro@docomo.ne.jp", subject=evil, body=evil,
                              message_id="<x@y>", date=datetime(2026, 1, 1, tzinfo=TOKYO),
                              charset="utf-8")
    msg = parsed(data)
    assert msg["Bcc"] is None
    assert [a.addr_spec for a in msg["To"].addresses] == ["taro@docomo.ne.jp"]
    assert msg["Subject"] == evil.replace("\r", " ").replace("\n", " ")
    assert msg["From"].addresses[0].addr_spec == "lib@city.omitama.ibaraki.jp"
    assert msg.defects == [] and len(msg.keys()) == 10


@pytest.mark.parametrize("addr", [
    "a@b.jp\r\nBcc: x@y.jp", "a@b.jp, c@d.jp", "<a@b.jp>", "a b@c.jp", "a@b.jp>", "",
    '"a"b"@c.jp', "a@-b.jp", "山田@example.jp",
])
def test_recipient_must_be_one_plain_address(addr):
    with pytest.raises(ValueError):
        check_addr_spec(addr)


def test_encoded_words_stay_within_75_chars_and_decode():
    text = "長い件名" * 30
    for charset in ("utf-8", "iso-2022-jp"):
        words = encode_words(text, charset).split("\r\n ")
        assert all(len(w) <= 75 for w in words)
        from email.header import decode_header, make_header
        assert str(make_header(decode_header(encode_words(text, charset)))) == text


def test_message_id_token_round_trip(composer):
    mid = composer.message_id("abc123")
    assert token_of(mid, "city.omitama.ibaraki.jp") == "abc123"
    assert token_of("<other@example.jp>", "city.omitama.ibaraki.jp") is None
    assert token_of("<hold.x@evil.jp>", "city.omitama.ibaraki.jp") is None


# -- every line fits a phone (40 columns: a wide character counts 2) -----------------------

LONG_TITLE = "もしも高校野球の女子マネージャーがドラッカーの『マネジメント』を読んだら"
LONG_AUTHOR = "ジョン・ロナルド・ロウエル・トールキン 作／瀬田貞二，田中明子 訳"


def _body(n) -> str:
    return parsed(n.data).get_content().replace("\r\n", "\n")


def _too_wide(body: str) -> list[str]:
    return [line for line in body.splitlines() if columns(line) > MAIL_COLUMNS]


@pytest.mark.parametrize("charset", ["utf-8", "iso-2022-jp"])
@pytest.mark.parametrize("carrier", [*CARRIERS, None])
def test_confirmation_lines_fit_a_phone_for_every_carrier(settings, carrier, charset):
    # the carrier advice used to be one line of 182 characters
    s = variant(settings, mail={"charset": charset})
    for branch in s.branches:
        body = _body(Composer(s).confirmation("taro@docomo.ne.jp", "042917", branch, carrier,
                                              "12月14日(月)", "t1"))
        assert _too_wide(body) == [], body
        assert "\n042917\n" in body and "有効期限：12月14日(月)まで" in body
        assert "お申込みの図書館へ" in body and s.branches[branch].name in body


@pytest.mark.parametrize("over", [
    {}, {"patron_name": None}, {"item": {"title": LONG_TITLE, "author": LONG_AUTHOR, "material": "book"}},
    {"item": {"title": "The Art of Computer Programming, Volume 1: Fundamental Algorithms",
              "author": "Donald E. Knuth", "material": "book"}},
    {"patron_name": "ヤマダ・アレクサンドラ・ハナコ・ウィリアムズ", "pickup_branch": "minori"},
])
def test_notice_lines_fit_a_phone_with_long_titles_and_names(composer, settings, over):
    body = _body(notice(composer, settings, **over))
    assert _too_wide(body) == [], body
    item = over.get("item", {})
    for text in (item.get("title"), item.get("author")):
        if text:  # wrapped, not cut: every character is still there
            assert text.replace(" ", "") in body.replace("\n", "").replace(" ", "")


_TEXT = st.text(st.sampled_from(list("あいうえおがはをにのでアイウエオーメール受信設定図書館予約"
                                     "、。「」（）・ー ッャabcXYZ019@.-→■")), max_size=200)


@given(_TEXT, st.integers(10, 60))
@hsettings(max_examples=300, deadline=None)
def test_wrap_keeps_every_character_and_the_width(text, width):
    lines = wrap(text, width)
    assert all(columns(line) <= width for line in lines)
    # only spaces at a break go; nothing else is lost, added or reordered
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    for before, line in zip(lines, lines[1:]):
        assert line == line.strip(" ")
        # kinsoku: no line starts with 、。」ー unless the one before was cut full
        assert not line.startswith(tuple("、。」）ー")) or columns(before) > width - 2
