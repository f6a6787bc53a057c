"""The SMTP transport pipelines MAIL/RCPT/DATA when the relay advertises PIPELINING
(RFC 2920), sends them one at a time otherwise, and behaves exactly as aiosmtplib's
sendmail did: same bytes on the wire, same refusals (type, text, code, command), the
envelope reset after a refusal, the connection reused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from worker.mail.compose import Notice
from worker.errors import PermanentDeliveryError, TransientDeliveryError
from worker.mail.pipelining import PipeliningProtocol
from worker.mail.transport import SmtpTransport

from tests.helpers import free_port


class _Handler:
    def __init__(self, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.mail_reply: str | None = None
        self.rcpt_reply: dict[str, str] = {}
        self.data_reply: str | None = None
        self.received: list[tuple[str, list[str], list[str], bytes]] = []
        self.commands: list[str] = []
        self.wire: list[str] = []  # RCPT arguments as they came over the wire
        self.verbs: list[str] = []  # MAIL, RCPT, DATA, RSET as they came, accepted or not

    async def handle_EHLO(self, server: SMTP, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: SMTP, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        self.commands.append(f"MAIL {address} {' '.join(options)}".strip())
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        self.commands.append(f"RCPT {address}")
        if address in self.rcpt_reply:
            return self.rcpt_reply[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.received.append((envelope.mail_from, list(envelope.mail_options),
                              list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: queued as X1"


class _WireSMTP(SMTP):
    async def smtp_MAIL(self, arg: str) -> None:
        self.event_handler.verbs.append("MAIL")
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str) -> None:
        self.event_handler.wire.append(arg)
        self.event_handler.verbs.append("RCPT")
        await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        self.event_handler.verbs.append("DATA")
        await super().smtp_DATA(arg)

    async def smtp_RSET(self, arg: str) -> None:
        self.event_handler.verbs.append("RSET")
        await super().smtp_RSET(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _WireSMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture(params=[True, False], ids=["pipelining", "plain"])
def relay(request: pytest.FixtureRequest) -> Any:
    handler = _Handler(request.param)
    port = free_port()
    controller = _Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port  # type: ignore[attr-defined]
    yield handler
    controller.stop()


def _transport(settings: Any, port: int) -> SmtpTransport:
    smtp = settings.smtp.model_copy(update={"host": "127.0.0.1", "port": port, "pool_size": 1,
                                            "timeout": 5})
    return SmtpTransport(smtp)


def _notice(i: int, to: str | None = None) -> Notice:
    body = (f"Subject: t{i}\r\n\r\nline one\r\n.starts with a dot\r\n..two\r\n"
            f"{'あ' * 10}\r\n").encode("utf-8")
    return Notice(f"<hold.t{i}@example.jp>", "lib@city.omitama.ibaraki.jp",
                  to or f"p{i}@example.jp", body)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_messages_arrive_intact_over_one_connection(relay: _Handler, settings: Any) -> None:
    async def go() -> tuple[list[str], int, bool]:
        t = _transport(settings, relay.port)  # type: ignore[attr-defined]
        try:
            replies = [await t.send(_notice(i)) for i in range(5)]
            conn = t.pool.get_nowait()
            t.pool.put_nowait(conn)
            return replies, t.connects, isinstance(conn.client.protocol, PipeliningProtocol)
        finally:
            await t.close()

    replies, connects, pipelined = _run(go())
    assert replies == ["2.0.0 Ok: queued as X1"] * 5
    assert connects == 1
    assert pipelined  # the transport's own transaction, pipelined or one command at a time
    assert [r[2] for r in relay.received] == [[f"p{i}@example.jp"] for i in range(5)]
    for i, (sender, options, _, data) in enumerate(relay.received):
        assert sender == "lib@city.omitama.ibaraki.jp"
        assert data == _notice(i).data  # dot-stuffing undone by the relay: the same bytes
        assert [o.upper() for o in options] == [f"SIZE={len(_notice(i).data)}"]


def test_quoted_local_part_goes_over_the_wire_as_before(relay: _Handler, settings: Any) -> None:
    async def go() -> None:
        t = _transport(settings, relay.port)  # type: ignore[attr-defined]
        try:
            await t.send(_notice(1, '"taro..yamada"@docomo.ne.jp'))
        finally:
            await t.close()

    _run(go())
    assert relay.wire == ['TO:<"taro..yamada"@docomo.ne.jp>']
    assert len(relay.received) == 1


def _refusal(relay: _Handler, settings: Any) -> tuple[BaseException, str, int]:
    """Send one refused notice, then a good one on the same connection."""
    async def go() -> tuple[BaseException, str, int]:
        t = _transport(settings, relay.port)  # type: ignore[attr-defined]
        try:
            with pytest.raises((PermanentDeliveryError, TransientDeliveryError)) as e:
                await t.send(_notice(1))
            relay.mail_reply = relay.data_reply = None
            relay.rcpt_reply.clear()
            return e.value, await t.send(_notice(2)), t.connects
        finally:
            await t.close()
    return _run(go())


def _describe(e: BaseException) -> tuple[str, str, Any, Any, Any]:
    return (type(e).__name__, str(e), getattr(e, "code", None), getattr(e, "text", None),
            getattr(e, "command", None))


def test_recipient_refused_permanently(relay: _Handler, settings: Any) -> None:
    relay.rcpt_reply["p1@example.jp"] = "550 5.1.1 <p1@example.jp>: User unknown"
    e, reply, connects = _refusal(relay, settings)
    assert _describe(e) == ("PermanentDeliveryError",
                            "relay refused the recipient: 550 5.1.1 <p1@example.jp>: User unknown",
                            550, "5.1.1 <p1@example.jp>: User unknown", "RCPT")
    assert reply == "2.0.0 Ok: queued as X1" and connects == 1
    assert [r[2] for r in relay.received] == [["p2@example.jp"]]


def test_recipient_refused_for_now(relay: _Handler, settings: Any) -> None:
    relay.rcpt_reply["p1@example.jp"] = "451 4.7.1 Greylisted, try again"
    e, reply, connects = _refusal(relay, settings)
    assert _describe(e) == ("TransientDeliveryError",
                            "relay refused the recipient: 451 4.7.1 Greylisted, try again",
                            451, "4.7.1 Greylisted, try again", "RCPT")
    assert connects == 1 and [r[2] for r in relay.received] == [["p2@example.jp"]]


def test_sender_refused(relay: _Handler, settings: Any) -> None:
    relay.mail_reply = "553 5.7.1 Sender not allowed"
    e, reply, connects = _refusal(relay, settings)
    assert _describe(e) == (
        "TransientDeliveryError",
        "relay refused our sender lib@city.omitama.ibaraki.jp: 553 5.7.1 Sender not allowed;"
        " check [mail] from_address and the relay's policy", 553, "5.7.1 Sender not allowed",
        "MAIL")
    assert connects == 1 and [r[2] for r in relay.received] == [["p2@example.jp"]]


def test_message_refused(relay: _Handler, settings: Any) -> None:
    relay.data_reply = "554 5.7.1 Message rejected as spam"
    e, reply, connects = _refusal(relay, settings)
    assert _describe(e) == ("PermanentDeliveryError",
                            "relay refused the message: 554 5.7.1 Message rejected as spam",
                            554, "5.7.1 Message rejected as spam", "DATA")
    assert connects == 1 and [r[2] for r in relay.received] == [["p2@example.jp"]]


def test_relay_closing_reconnects_next_time(relay: _Handler, settings: Any) -> None:
    relay.rcpt_reply["p1@example.jp"] = "421 4.3.2 Service shutting down"
    e, reply, connects = _refusal(relay, settings)
    assert _describe(e)[:3] == ("TransientDeliveryError",
                                "relay refused the recipient: 421 4.3.2 Service shutting down",
                                421)
    assert reply == "2.0.0 Ok: queued as X1"
    assert [r[2] for r in relay.received] == [["p2@example.jp"]]


def test_without_pipelining_each_command_waits_for_the_reply_before(relay: _Handler,
                                                                    settings: Any) -> None:
    """The fallback for a relay that does not advertise PIPELINING is really taken: after
    a refused MAIL such a relay sees no RCPT and no DATA (pipelined, both were already on
    their way — the relay only answers them with 503)."""
    relay.mail_reply = "553 5.7.1 Sender not allowed"

    async def go() -> None:
        t = _transport(settings, relay.port)  # type: ignore[attr-defined]
        try:
            with pytest.raises(TransientDeliveryError):
                await t.send(_notice(1))
        finally:
            await t.close()

    _run(go())
    if relay.pipelining:
        assert relay.verbs == ["MAIL", "RCPT", "DATA", "RSET"]
    else:
        assert relay.verbs == ["MAIL", "RSET"]
    relay.mail_reply = None
    relay.verbs.clear()
    replies = _run(_send_all(settings, relay.port, 2))  # type: ignore[attr-defined]
    assert replies == ["2.0.0 Ok: queued as X1"] * 2
    assert relay.verbs == ["MAIL", "RCPT", "DATA"] * 2
    assert [r[3] for r in relay.received] == [_notice(i).data for i in range(2)]


def test_a_protocol_of_another_class_falls_back_to_aiosmtplibs_sendmail(
        relay: _Handler, settings: Any) -> None:
    """When aiosmtplib's protocol is not the class pipelining.py was checked against (a
    later aiosmtplib), the transport leaves it alone and uses aiosmtplib's own sendmail."""
    from aiosmtplib.protocol import SMTPProtocol

    class Later(SMTPProtocol):
        pass

    async def go() -> list[str]:
        t = _transport(settings, relay.port)  # type: ignore[attr-defined]
        try:
            conn = t.pool.get_nowait()
            await conn.client.connect()
            conn.client.protocol.__class__ = Later  # type: ignore[union-attr]
            t.pool.put_nowait(conn)
            replies = [await t.send(_notice(i)) for i in range(2)]
            assert type(conn.client.protocol) is Later  # never swapped for ours
            return replies
        finally:
            await t.close()

    assert _run(go()) == ["2.0.0 Ok: queued as X1"] * 2
    assert [r[3] for r in relay.received] == [_notice(i).data for i in range(2)]


async def _send_all(settings: Any, port: int, n: int) -> list[str]:
    t = _transport(settings, port)
    try:
        return [await t.send(_notice(i)) for i in range(n)]
    finally:
        await t.close()
