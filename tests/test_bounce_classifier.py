"""Focused tests of the bounce classifier: SMTP replies, hand-built DSNs, robustness."""

from __future__ import annotations

import os

from worker.bounces import BounceResult, classify_mail, classify_smtp_reply
from worker.bounces.cli import classify_paths

ORIGINAL_ID = "<179591556728.20958.1035.hold-123@city.omitama.ibaraki.jp>"


# -- send-time SMTP replies ---------------------------------------------------------------

def test_550_511_is_a_permanent_unknown_user() -> None:
    result = classify_smtp_reply(
        550, "5.1.1 <taro@example.jp>: Recipient address rejected: User unknown",
        recipient="taro@Example.JP")
    assert result.reason == "userunknown"
    assert result.is_bounce and result.permanent
    assert not result.misconfigured_recipient
    assert result.status == "5.1.1"
    assert result.reply_code == 550
    assert result.recipient == "taro@example.jp"


def test_docomo_filter_rejection_is_misconfigured() -> None:
    result = classify_smtp_reply(
        550, "5.7.1 <taro@docomo.ne.jp>: Recipient address rejected: rejected by recipient's filter",
        command="DATA", recipient="taro@docomo.ne.jp")
    assert result.reason == "filtered"
    assert result.misconfigured_recipient
    assert result.permanent


def test_552_522_is_mailbox_full_and_soft() -> None:
    result = classify_smtp_reply(552, "5.2.2 <hanako@example.jp>: Mailbox full",
                                 recipient="hanako@example.jp")
    assert result.reason == "mailboxfull"
    assert result.is_bounce
    assert not result.permanent


def test_4xx_replies_are_never_permanent() -> None:
    for code, text in ((421, "4.7.0 Try again later, closing connection."),
                       (450, "4.2.1 <taro@example.jp>: Mailbox temporarily unavailable"),
                       (450, "4.1.1 <taro@example.jp>: Recipient address rejected: User unknown")):
        result = classify_smtp_reply(code, text, recipient="taro@example.jp")
        assert result.is_bounce
        assert not result.permanent, (code, text, result.reason)


def test_2xx_reply_is_delivered() -> None:
    result = classify_smtp_reply(250, "2.0.0 Ok: queued as ABC", recipient="taro@example.jp")
    assert result.reason == "delivered"
    assert not result.is_bounce


# -- hand-built RFC 3464 DSNs ---------------------------------------------------------------

def _dsn(original_part: str) -> bytes:
    return (
        "From: MAILER-DAEMON@relay.example.jp (Mail Delivery System)\r\n"
        "To: lib@city.omitama.ibaraki.jp\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n'
        "\r\n--BB\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "<taro@docomo.ne.jp>: host mfsmax.docomo.ne.jp[203.0.113.1] said: 550 Unknown user\r\n"
        "    taro@docomo.ne.jp (in reply to end of DATA command)\r\n"
        "<jiro@example.jp>: host mx.example.jp said: 550 5.1.1 <jiro@example.jp>: User\r\n"
        "    unknown (in reply to RCPT TO command)\r\n"
        "\r\n--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; relay.example.jp\r\n"
        "Original-Envelope-Id: hold-123\r\n\r\n"
        "Final-Recipient: rfc822; taro@docomo.ne.jp\r\n"
        "Action: failed\r\nStatus: 5.2.0\r\nRemote-MTA: dns; mfsmax.docomo.ne.jp\r\n"
        "Diagnostic-Code: smtp; 550 Unknown user taro@docomo.ne.jp\r\n\r\n"
        "Final-Recipient: rfc822; jiro@EXAMPLE.jp\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <jiro@example.jp>:\r\n"
        "    Recipient address rejected: User unknown in local recipient table\r\n"
        "\r\n--BB\r\n" + original_part + "\r\n--BB--\r\n"
    ).encode()


def _original_headers() -> str:
    return ("From: lib@city.omitama.ibaraki.jp\r\nTo: taro@docomo.ne.jp\r\n"
            f"Message-ID: {ORIGINAL_ID}\r\nSubject: hold ready\r\n")


def _by_recipient(results: list[BounceResult]) -> dict[str | None, BounceResult]:
    return {r.recipient: r for r in results}


def test_dsn_with_message_rfc822_original() -> None:
    raw = _dsn("Content-Type: message/rfc822\r\n\r\n" + _original_headers() + "\r\nbody\r\n")
    results = _by_recipient(classify_mail(raw))
    assert set(results) == {"taro@docomo.ne.jp", "jiro@example.jp"}
    taro, jiro = results["taro@docomo.ne.jp"], results["jiro@example.jp"]
    assert taro.reason == "filtered" and taro.misconfigured_recipient and taro.permanent
    assert taro.status == "5.2.0"
    assert jiro.reason == "userunknown" and jiro.permanent and not jiro.misconfigured_recipient
    assert jiro.diagnostic == ("550 5.1.1 <jiro@example.jp>: Recipient address rejected: "
                               "User unknown in local recipient table")
    assert taro.original_message_id == jiro.original_message_id == ORIGINAL_ID


def test_dsn_with_text_rfc822_headers_original() -> None:
    raw = _dsn("Content-Type: text/rfc822-headers\r\n\r\n" + _original_headers())
    results = classify_mail(raw)
    assert len(results) == 2
    assert all(r.original_message_id == ORIGINAL_ID for r in results)
    assert all(r.is_bounce for r in results)


def test_delay_warning_is_not_a_bounce() -> None:
    raw = (b"From: MAILER-DAEMON@relay.example.jp\r\nSubject: Delayed Mail (still being retried)\r\n"
           b"MIME-Version: 1.0\r\n"
           b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
           b"--B\r\nContent-Type: text/plain\r\n\r\nStill trying.\r\n"
           b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; r\r\n\r\n"
           b"Final-Recipient: rfc822; hanako@ezweb.ne.jp\r\nAction: delayed\r\nStatus: 4.4.1\r\n"
           b"\r\n--B--\r\n")
    [result] = classify_mail(raw)
    assert result.reason == "delayed"
    assert not result.is_bounce and not result.permanent
    assert result.recipient == "hanako@ezweb.ne.jp"


def test_out_of_office_reply_is_not_a_bounce() -> None:
    raw = ("From: Taro <taro@example.jp>\r\nTo: lib@city.omitama.ibaraki.jp\r\n"
           "Subject: Out of Office: hold ready\r\nAuto-Submitted: auto-replied\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n"
           "I am out of the office until Monday. 不在にしております。\r\n").encode()
    [result] = classify_mail(raw)
    assert not result.is_bounce
    assert result.reason == "vacation"


def test_plain_mail_is_not_a_bounce() -> None:
    raw = b"From: taro@example.jp\r\nSubject: hello\r\n\r\nThanks for the book!\r\n"
    [result] = classify_mail(raw)
    assert not result.is_bounce
    assert result.reason is None


# -- robustness: any bytes give a result ------------------------------------------------------

def test_empty_bytes() -> None:
    [result] = classify_mail(b"")
    assert result == BounceResult(is_bounce=False)


def test_binary_garbage() -> None:
    results = classify_mail(os.urandom(4096) + b"\x00\xff\r\n\r\n" + os.urandom(4096))
    assert results and all(isinstance(r, BounceResult) for r in results)
    assert not any(r.is_bounce for r in results)


def test_truncated_mime_still_classifies() -> None:
    raw = _dsn("Content-Type: message/rfc822\r\n\r\n" + _original_headers())
    cut = raw[: raw.index(b"Diagnostic-Code: smtp; 550 5.1.1")]
    results = _by_recipient(classify_mail(cut))
    assert results["taro@docomo.ne.jp"].reason == "filtered"
    assert "jiro@example.jp" in results


def test_mislabelled_charset_is_decoded() -> None:
    body = "送信先メールアドレスが見つかりませんでした。\n<taro@example.jp>\n".encode("euc-jp")
    raw = (b"From: MAILER-DAEMON@example.jp\r\nSubject: Returned mail\r\n"
           b"Content-Type: text/plain; charset=iso-2022-jp\r\n\r\n" + body)
    [result] = classify_mail(raw)
    assert result.recipient == "taro@example.jp"
    assert result.is_bounce


def test_ten_megabyte_mail() -> None:
    raw = _dsn("Content-Type: message/rfc822\r\n\r\n" + _original_headers() + "\r\n"
               + ("x" * 999 + "\r\n") * 10_500)
    assert len(raw) > 10 * 1024 * 1024
    results = _by_recipient(classify_mail(raw))
    assert results["jiro@example.jp"].reason == "userunknown"


def test_non_bytes_input_does_not_raise() -> None:
    [result] = classify_mail(None)  # type: ignore[arg-type]
    assert not result.is_bounce


# -- CLI helper --------------------------------------------------------------------------------

def test_classify_paths_reports_unreadable_files_and_goes_on(tmp_path) -> None:
    good = tmp_path / "dsn.eml"
    good.write_bytes(_dsn("Content-Type: text/rfc822-headers\r\n\r\n" + _original_headers()))
    rows = list(classify_paths([str(tmp_path / "missing.eml"), str(good)]))
    assert rows[0]["file"].endswith("missing.eml") and "error" in rows[0]
    assert len(rows) == 3
    assert set(rows[1]) == {"file", "is_bounce", "recipient", "original_message_id", "reason",
                            "permanent", "misconfigured_recipient", "status", "diagnostic"}


# -- one list of carrier domains (issue 12) -------------------------------------------------

def test_every_carrier_domain_gets_both_the_advice_and_the_filter_judgement() -> None:
    """Issue 20: a carrier's refusal of our sender is the patron's filter only on evidence
    of it; in plain words it may be the carrier's なりすまし filter refusing mail that fails
    SPF/DKIM — ours to fix, so a sender problem."""
    from worker.contact.domains import _CARRIER_DOMAINS

    for domain in [*_CARRIER_DOMAINS, "biz.au.com", "d.vodafone.ne.jp"]:
        plain = classify_smtp_reply(
            550, "5.7.1 <taro@x>: Sender address rejected: Access denied", command="MAIL",
            recipient=f"taro@{domain}")
        assert plain.reason == "rejected", domain
        assert not plain.misconfigured_recipient and plain.sender_problem, domain
        refused = classify_smtp_reply(
            550, "5.7.1 <taro@x>: Sender address rejected: 受信拒否設定により拒否されました",
            command="MAIL", recipient=f"taro@{domain}")
        assert refused.reason in ("rejected", "filtered"), domain
        assert refused.misconfigured_recipient and not refused.sender_problem, domain
    elsewhere = classify_smtp_reply(550, "5.7.1 Sender address rejected: Access denied",
                                    command="MAIL", recipient="taro@example.jp")
    assert elsewhere.reason == "rejected" and not elsewhere.misconfigured_recipient
