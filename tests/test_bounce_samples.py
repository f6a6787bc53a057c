"""Public and hand-written bounce samples for the cases of issue 10 (item 5).

The mails are in ``tests/bounce-samples/`` (see its README for sources and licences).
Each row: file, the failed recipients we must name (lower-cased; an empty set means
"nobody can be named from this mail"), the reason (None: any bounce reason), whether it is
a bounce, and whether the patron's own settings are to blame.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.bounces import classify_mail

SAMPLES = Path(__file__).resolve().parent / "bounce-samples"

ROWS: list[tuple[str, set[str], str | None, bool, bool]] = [
    # -- a dead mailbox is never the patron's filter ----------------------------------------
    ("ours/outlook-s2017062302.eml", {"taro@outlook.jp"}, "userunknown", True, False),
    ("ours/addressee-unknown-553.eml", {"hanako@example.ne.jp"}, "userunknown", True, False),
    ("ours/user-unknown-no-command.eml", {"jiro@example.co.jp"}, "userunknown", True, False),
    ("flufl-bounce/simple_27.txt", {"userx@example.net.py"}, "userunknown", True, False),
    # -- plain-text delay warnings are delays, not failures ---------------------------------
    ("ours/exim-delay-base64-subject.eml", {"saburo@example.org"}, "delayed", False, False),
    ("flufl-bounce/simple_03.txt", {"userx@example.za"}, "delayed", False, False),
    ("flufl-bounce/simple_21.txt", {"userx@example.com"}, "delayed", False, False),
    ("flufl-bounce/simple_22.txt", {"user@example.org"}, "delayed", False, False),
    ("flufl-bounce/simple_35.txt", {"calvin@example.com"}, "delayed", False, False),
    ("flufl-bounce/simple_40.txt", {"user@example.com"}, "delayed", False, False),
    # -- addresses without junk, from the right place, all of them --------------------------
    ("flufl-bounce/microsoft_01.txt", {"userx@example.com"}, "userunknown", True, False),
    ("flufl-bounce/microsoft_04.txt", {"userx@example.com"}, "userunknown", True, False),
    ("flufl-bounce/bounce_03.txt", {"userx@example.uk"}, "expired", True, False),
    ("flufl-bounce/simple_45.txt", {"subscriber@earthlink.net"}, "mailboxfull", True, False),
    ("flufl-bounce/llnl_01.txt", {"user1@example.gov"}, None, True, False),
    ("flufl-bounce/yale_01.txt", set(), None, True, False),
    ("flufl-bounce/aol_01.txt", set(), None, True, False),
    ("flufl-bounce/groupwise_02.txt", {"userx@example.com"}, "userunknown", True, False),
    ("flufl-bounce/netscape_01.txt", {"aaaaa@corel.com", "bbbbb@corel.com"}, None, True, False),
    ("flufl-bounce/sina_01.txt", {"userx@sina.com", "usery@sina.com"}, None, True, False),
    # forwarded: Original-Recipient is the address we mailed, the failure is its (issue 20)
    ("flufl-bounce/dsn_04.txt", {"userx@example.ch"}, "mailboxfull", True, False),
    # -- a version number in the quoted headers is not a status -----------------------------
    ("flufl-bounce/simple_43.txt", {"test-a@listserv.our-domain.de"}, None, True, False),
    # -- challenge-response requests are not bounces ----------------------------------------
    ("ours/challenge-response-boxbe-style.eml", set(), None, False, False),
    ("ours/challenge-response-generic.eml", set(), None, False, False),
    # -- issue 20: "the patron's filter" only on evidence of one -------------------------------
    ("sisimai/lhost-powermta-01.eml", {"kijitora@example.jp"}, "filtered", True, False),
    ("sisimai/lhost-messagingserver-06.eml", {"kijitora@example.jp"}, "filtered", True, False),
    # deferred for days (our IP blocked meanwhile), then given up: expired, not blocked
    ("ours/sendmail-deferred-blocked-5-days.eml", {"hanako@example.org"}, "expired", True, False),
    ("ours/deferred-blocked-retry-timeout.eml", {"hanako@example.org"}, "expired", True, False),
    # an auto-reply is named, and is no bounce
    ("ours/auto-reply-ja-fuzai.eml", {"taro@example.co.jp"}, "vacation", False, False),
    # Original- and Final-Recipient: the failure belongs to the address we mailed
    ("sisimai/lhost-postfix-77.eml", {"neko@example.co.jp"}, None, True, False),
    ("sisimai/rhost-google-03.eml", {"neko@example.co.jp"}, "authfailure", True, False),
    # -- controls: ordinary bounces stay as they were ---------------------------------------
    ("flufl-bounce/postfix_01.txt", {"xxxxx@local.ie"}, "userunknown", True, False),
    ("flufl-bounce/simple_42.txt", {"david...@gmail.com"}, "spamdetected", True, False),
]


@pytest.mark.parametrize(("name", "recipients", "reason", "is_bounce", "misconfigured"), ROWS,
                         ids=[row[0] for row in ROWS])
def test_sample(name: str, recipients: set[str], reason: str | None, is_bounce: bool,
                misconfigured: bool) -> None:
    results = classify_mail((SAMPLES / name).read_bytes())
    assert {(r.recipient or "").lower() for r in results if r.recipient} == recipients
    for result in results:
        assert result.is_bounce is is_bounce, result
        assert result.misconfigured_recipient is misconfigured, result
        assert result.reason != "delivered", result
        if reason is not None:
            assert result.reason == reason, result
        if not is_bounce:
            assert not result.permanent


def test_every_sample_is_in_the_table() -> None:
    files = {f"{p.parent.name}/{p.name}" for p in SAMPLES.glob("*/*") if p.suffix in (".eml", ".txt")
             and not p.name.startswith("LICENSE")}
    assert files == {row[0] for row in ROWS}
