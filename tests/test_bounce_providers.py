"""Provider codes, special formats and DSN quirks of the bounce classifier (hand-built mails)."""

from __future__ import annotations

import json

import pytest

from worker.bounces import classify_mail, classify_smtp_reply
from worker.bounces.fact import join_reply_lines
from worker.bounces.patterns import ALIGNED, ANY


def _dsn(recipient: str, diagnostic: str, status: str = "5.0.0", remote: str = "mx.example.net",
         reporting: str = "relay.example.jp", fields_order: str = "standard") -> bytes:
    if fields_order == "ses":
        block = (f"Action: failed\r\nFinal-Recipient: rfc822; {recipient}\r\n"
                 f"Original-Recipient: rfc822; {recipient}\r\n"
                 f"Diagnostic-Code: smtp; {diagnostic}\r\nStatus: {status}\r\n")
    else:
        block = (f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
                 f"Remote-MTA: dns; {remote}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n")
    return (
        "From: MAILER-DAEMON@relay.example.jp\r\nTo: lib@city.omitama.ibaraki.jp\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n\r\n'
        "--BB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {reporting}\r\n\r\n{block}\r\n--BB--\r\n").encode()


@pytest.mark.parametrize(("recipient", "diagnostic", "remote", "reason"), [
    ("taro@cox.net", "550 5.1.0 <lib@city.omitama.ibaraki.jp> sender rejected. AUP#CXBL",
     "mx.cox.net", "blocked"),
    ("taro@cox.net", "550 5.1.0 <lib@city.omitama.ibaraki.jp> sender rejected. AUP#CXDNS",
     "mx.cox.net", "requireptr"),
    ("taro@charter.net", "550 5.1.0 <b@example.jp> sender rejected. AUP#In-1310",
     "mx.charter.net", "toomanyconn"),
    ("taro@charter.net", "550 5.1.0 <b@example.jp> sender rejected. AUP#Out-1530",
     "mx.charter.net", "mesgtoobig"),
    ("taro@wanadoo.fr", "550 5.2.0 Mail rejete. Mail rejected. OFR_506 [506]",
     "smtp.wanadoo.fr", "spamdetected"),
    ("taro@laposte.net", "554 5.7.1 <h[192.0.2.1]>: Client host rejected: LPN000_630",
     "smtpz4.laposte.net", "policyviolation"),
    ("taro@example.co.uk", "554 email rejected due to security policies - MCSpamSignature",
     "service1.mimecast.com", "virusdetected"),
    ("taro@example.com", "554 Host network not allowed - https://community.mimecast.com",
     "eu-smtp-inbound-1.mimecast.com", "policyviolation"),
    ("taro@example.ca", "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to "
     "unexpected volume or user complaints", "mta7.am0.yahoodns.net", "rejected"),
])
def test_provider_codes(recipient: str, diagnostic: str, remote: str, reason: str) -> None:
    [result] = classify_mail(_dsn(recipient, diagnostic, remote=remote))
    assert result.recipient == recipient
    assert result.reason == reason


def test_same_wording_elsewhere_is_not_a_provider_code() -> None:
    # Cox's AUP#CXBL means "your IP is blocked" only when Cox said it.
    [result] = classify_mail(_dsn("taro@example.org", "550 5.7.1 Message rejected. AUP#CXBL",
                                  status="5.7.1"))
    assert result.reason != "blocked"


def test_multi_line_reply_is_read_as_one_sentence() -> None:
    text = ("550-5.2.1 The user you are trying to contact is receiving mail at a rate that "
            "550-5.2.1 prevents additional messages from being delivered. 550 5.2.1 See help")
    joined = join_reply_lines(text)
    assert "at a rate that prevents additional messages" in joined
    [result] = classify_mail(_dsn("taro@gmail.com", text, status="5.2.1",
                                  remote="gmail-smtp-in.l.google.com"))
    assert result.reason == "speeding"


def test_unindented_diagnostic_continuation_keeps_the_rest_of_the_block() -> None:
    raw = _dsn("taro@example.messagelabs.com",
               "550-Please turn on SMTP Authentication in your mail client.\r\n"
               "550-mail0.example.messagelabs.com [192.0.2.1]:1 is not permitted to\r\n"
               "550 relay through this server without authentication.",
               reporting="server-0.bemta-0.messagelabs.com")
    [result] = classify_mail(raw)
    assert result.recipient == "taro@example.messagelabs.com"
    assert result.status == "5.0.0"
    assert result.reason == "securityerror"
    assert "relay through this server" in (result.diagnostic or "")


def test_action_before_final_recipient_gives_one_result() -> None:
    raw = _dsn("hanako@example.jp", "552 5.3.4 Message too large", status="5.3.4",
               fields_order="ses")
    [result] = classify_mail(raw)
    assert result.recipient == "hanako@example.jp"
    assert result.reason == "mesgtoobig"


def _ses_mail(payload: dict) -> bytes:
    return ("From: SES <no-reply@sns.amazonaws.com>\r\nTo: lib@city.omitama.ibaraki.jp\r\n"
            "Subject: AWS Notification Message\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
            + json.dumps(payload) + "\r\n--\r\nIf you wish to stop receiving notifications ...\r\n"
            ).encode()


def test_ses_json_delivery_and_bounce() -> None:
    [delivered] = classify_mail(_ses_mail({
        "notificationType": "Delivery", "mail": {},
        "delivery": {"recipients": ["taro@example.jp"], "smtpResponse": "250 2.6.0 Message received"}}))
    assert delivered.reason == "delivered" and not delivered.is_bounce
    assert delivered.recipient == "taro@example.jp"

    [bounced] = classify_mail(_ses_mail({
        "notificationType": "Bounce", "mail": {},
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "bouncedRecipients": [
            {"emailAddress": "jiro@example.jp", "action": "failed", "status": "5.1.1",
             "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}}))
    assert bounced.reason == "userunknown" and bounced.permanent
    assert bounced.recipient == "jiro@example.jp"

    [complaint] = classify_mail(_ses_mail({
        "notificationType": "Complaint", "mail": {},
        "complaint": {"complainedRecipients": [{"emailAddress": "saburo@example.jp"}]}}))
    assert complaint.reason == "feedback" and not complaint.is_bounce


def test_ezweb_spasign_ng_means_filtered() -> None:
    raw = ("From: <Postmaster@ezweb.ne.jp>\r\nTo: lib@city.omitama.ibaraki.jp\r\n"
           "Subject: Mail System Error - Returned Mail\r\nX-SPASIGN: NG\r\n"
           "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
           "<hanako@ezweb.ne.jp>\r\n\r\n"
           "Each of the following recipients was rejected by a remote mail server.\r\n").encode()
    [result] = classify_mail(raw)
    assert result.recipient == "hanako@ezweb.ne.jp"
    assert result.reason == "filtered" and result.misconfigured_recipient


def test_sendmail_one_line_replies_stay_with_their_recipient() -> None:
    raw = ("From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.jp>\r\n"
           "To: lib@city.omitama.ibaraki.jp\r\nSubject: Returned mail: see transcript\r\n\r\n"
           "   ----- Transcript of session follows -----\r\n"
           "554 <taro@example.edu>... Remote protocol error: Connection reset by peer\r\n"
           "550 example.or.jp (smtp)... 550 Host unknown\r\n"
           "554 <jiro@example.or.jp>... 550 Host unknown (Authoritative answer from name server)\r\n"
           ).encode()
    results = {r.recipient: r.reason for r in classify_mail(raw)}
    assert results == {"taro@example.edu": "blocked", "jiro@example.or.jp": "hostunknown"}


def test_fml_not_a_member_notice() -> None:
    raw = ("From: lib-admin@example.org\r\nTo: lib@city.omitama.ibaraki.jp\r\n"
           "Subject: You lib@city.omitama.ibaraki.jp are not member (lib ML)\r\n"
           "Message-ID: <200504292334.FMLFFFFFF0.lib@example.org>\r\n"
           "X-MLServer: fml [fml 4.0.3 release]\r\n\r\n"
           "You are not a member of this mailing list <lib@example.org>.\r\n").encode()
    [result] = classify_mail(raw)
    assert result.recipient == "lib@example.org"
    assert result.reason == "rejected"


def test_pattern_tables_are_split_but_complete() -> None:
    for reason in ("userunknown", "filtered", "rejected", "blocked", "spamdetected", "expired"):
        assert ANY[reason], reason
    assert ALIGNED["userunknown"]
    assert "an mx or srv record indicated no smtp service" in ANY["notaccept"]


def test_smtp_reply_at_a_provider_uses_its_codes() -> None:
    result = classify_smtp_reply(550, "5.1.0 <lib@city.omitama.ibaraki.jp> sender rejected. AUP#CXBL",
                                 command="MAIL", recipient="taro@cox.net")
    assert result.reason == "blocked"
    assert not result.misconfigured_recipient


def test_dsn_forwarded_as_an_attachment_is_read() -> None:
    inner = _dsn("taro@example.org", "550 5.1.1 User unknown", status="5.1.1").decode()
    raw = ("From: gateway@example.jp\r\nTo: lib@city.omitama.ibaraki.jp\r\n"
           "Subject: Returned mail\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="OUT"\r\n\r\n'
           "--OUT\r\nContent-Type: text/plain\r\n\r\n"
           "----- The following addresses had permanent delivery errors -----\r\n"
           "--OUT\r\nContent-Type: message/rfc822\r\n\r\n" + inner + "\r\n--OUT--\r\n").encode()
    [result] = classify_mail(raw)
    assert result.recipient == "taro@example.org"
    assert result.reason == "userunknown" and result.status == "5.1.1"
