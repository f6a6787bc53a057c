"""Property tests: the bounce classifier survives any bytes and any broken MIME.

``classify_mail`` promises never to raise; its last-resort ``except`` would hide a crash
inside as a "not classified" result, so these tests also require that no such internal
error happens: hostile input must be *handled*, not merely caught.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.bounces import REASONS, BounceResult, classify_mail, classify_smtp_reply

_SETTINGS = settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])

_HEADER_NAMES = st.sampled_from([
    "From", "To", "Subject", "Content-Type", "Content-Transfer-Encoding", "MIME-Version",
    "Message-ID", "X-Failed-Recipients", "Auto-Submitted", "Return-Path", "In-Reply-To",
    "Final-Recipient", "Original-Recipient", "Action", "Status", "Diagnostic-Code",
    "Remote-MTA", "Reporting-MTA"])
_VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from([
        'multipart/report; report-type=delivery-status; boundary="B"',
        "multipart/report; boundary=", "multipart/mixed; boundary=\"\"", "message/rfc822",
        "message/delivery-status", "text/plain; charset=iso-2022-jp", "text/plain; charset=x-nope",
        "text/html; charset=utf-8", "base64", "quoted-printable", "8bit", "rfc822; <>",
        "rfc822; taro@docomo.ne.jp", "failed", "delayed", "5.1.1", "2.1.5", "4.4.7",
        "smtp; 550 5.1.1 User unknown", "=?utf-8?B?5bGx55Sw?=", "=?iso-2022-jp?B?GyRC?=",
        "MAILER-DAEMON@example.jp", "<>", "auto-replied", "<a@b>"]))
_PART_BODIES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"--B\r\n", b"--B--\r\n", b"Final-Recipient: rfc822; x@y.jp\r\n",
                     b"Action: failed\r\nStatus: 5.2.0\r\n", b"=?=\r\n", b"\x1b$B$3\x1b(B",
                     b"Content-Type: message/delivery-status\r\n\r\n", b"\r\n\r\n"]))


@st.composite
def broken_mime(draw: st.DrawFn) -> bytes:
    """Headers and parts in random order, boundaries that may not match, cut anywhere."""
    lines = [f"{name}: {value}".encode("utf-8", "surrogatepass")
             for name, value in draw(st.lists(st.tuples(_HEADER_NAMES, _VALUES), max_size=12))]
    raw = b"\r\n".join(lines) + b"\r\n\r\n" + b"".join(draw(st.lists(_PART_BODIES, max_size=10)))
    cut = draw(st.integers(min_value=0, max_value=len(raw)))
    return raw[:cut] if draw(st.booleans()) else raw


def _check(results: list[BounceResult]) -> None:
    assert results and all(isinstance(r, BounceResult) for r in results)
    for result in results:
        assert not (result.diagnostic or "").startswith("not classified:"), result.diagnostic
        assert result.reason is None or result.reason in REASONS
        assert result.is_bounce is (result.reason is not None and result.reason not in
                                    ("delayed", "vacation", "delivered", "feedback"))
        assert not result.permanent or result.is_bounce
        assert not result.misconfigured_recipient or result.is_bounce
        assert result.recipient is None or "@" in result.recipient
        json.dumps(result.as_json("x.eml"))  # the CLI can always print it


@_SETTINGS
@given(st.binary(max_size=4000))
def test_any_bytes_give_a_result(raw: bytes) -> None:
    _check(classify_mail(raw))


@_SETTINGS
@given(broken_mime())
def test_broken_mime_gives_a_result(raw: bytes) -> None:
    _check(classify_mail(raw))


@_SETTINGS
@given(st.integers(min_value=-1000, max_value=100_000), st.text(max_size=200),
       st.sampled_from(["RCPT", "MAIL", "DATA", "", "rcpt to", "END OF DATA", "EHLO"]),
       st.one_of(st.none(), st.text(max_size=40), st.just("taro@docomo.ne.jp")))
def test_any_smtp_reply_gives_a_result(code: int, text: str, command: str,
                                       recipient: str | None) -> None:
    result = classify_smtp_reply(code, text, command=command, recipient=recipient)
    _check([result])
