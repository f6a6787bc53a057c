"""SMTP transport against a real server that requires STARTTLS and AUTH (or implicit TLS)."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.helpers import free_port, variant
from worker.mail.compose import Notice
from worker.errors import TransientDeliveryError
from worker.mail.transport import SmtpTransport


class _Handler:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bool]] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              bool(session.ssl)))
        return "250 OK"


def _auth(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"omitama" \
        and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def tls_server(ca, tmp_path):
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = _Handler()
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port, tls_context=server_ctx,
                     require_starttls=True, authenticator=_auth, auth_require_tls=True)
    ctl.start()
    yield port, ca_file, handler
    ctl.stop()


NOTICE = Notice("<hold.t@x>", "lib@city.omitama.ibaraki.jp", "taro@docomo.ne.jp",
                b"Subject: t\r\n\r\nbody\r\n")


def _send(smtp_settings, notices=(NOTICE,)):
    async def go():
        t = SmtpTransport(smtp_settings)
        try:
            return [await t.send(n) for n in notices], t.connects
        finally:
            await t.close()
    return asyncio.run(go())


def test_starttls_and_auth_from_settings(settings, tls_server):
    port, ca_file, handler = tls_server
    s = variant(settings, smtp={"port": port, "starttls": True, "cert_bundle": str(ca_file),
                                "username": "omitama", "password": "s3cret", "pool_size": 1})
    replies, connects = _send(s.smtp, [NOTICE] * 3)
    assert connects == 1 and len(replies) == 3
    assert handler.received == [("lib@city.omitama.ibaraki.jp", ["taro@docomo.ne.jp"], True)] * 3


def test_wrong_password_is_a_clear_transient_error(settings, tls_server):
    port, ca_file, _ = tls_server
    s = variant(settings, smtp={"port": port, "starttls": True, "cert_bundle": str(ca_file),
                                "username": "omitama", "password": "wrong"})
    with pytest.raises(TransientDeliveryError, match="refused our login .*OMITAMA_NOTIFY_SMTP__PASSWORD"):
        _send(s.smtp)


def test_untrusted_certificate_is_refused(settings, tls_server):
    port, _, _ = tls_server
    s = variant(settings, smtp={"port": port, "starttls": True, "username": "omitama",
                                "password": "s3cret"})
    with pytest.raises(TransientDeliveryError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
        _send(s.smtp)


def test_without_starttls_the_relay_refuses(settings, tls_server):
    port, _, _ = tls_server
    s = variant(settings, smtp={"port": port, "starttls": False})
    with pytest.raises(TransientDeliveryError, match="530"):
        _send(s.smtp)


def test_implicit_tls(settings, ca, tmp_path):
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = _Handler()
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=server_ctx)
    ctl.start()
    try:
        s = variant(settings, smtp={"port": port, "tls": True, "cert_bundle": str(ca_file),
                                    "timeout": 2})
        _send(s.smtp)
        # the port speaks only TLS: a plain client gets nowhere
        with pytest.raises(TransientDeliveryError):
            _send(variant(s, smtp={"tls": False}).smtp)
    finally:
        ctl.stop()
    assert len(handler.received) == 1
