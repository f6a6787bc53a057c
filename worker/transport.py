"""Mail transports: the SMTP relay (pooled aiosmtplib connections) and the outbox.

Both take a finished :class:`~worker.compose.Notice` and either hand it over or
raise :class:`TransientDeliveryError` (try again later) /
:class:`PermanentDeliveryError` (the relay refused this recipient or message).
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import time
from pathlib import Path
from typing import Protocol

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import (MAX_RESPONSE_LENGTH, PERIOD_REGEX, SMTPProtocol,
                                 normalize_message_line_endings)

from .compose import Notice
from .errors import PermanentDeliveryError, TransientDeliveryError
from .settings import Settings, SmtpSettings

# A plain dot-atom address: aiosmtplib's quote_address() gives exactly ``<addr>`` for it
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                       r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")

# A pooled connection idle longer than this is checked with NOOP before use:
# relays drop idle clients, and finding out mid-transaction would cost a retry.
IDLE_CHECK_S = 10.0


class Transport(Protocol):
    async def send(self, notice: Notice) -> str: ...
    async def close(self) -> None: ...


class OutboxTransport:
    """Writes each message as ``<time>-<token>.eml``, atomically (temp file + rename),
    so a reader of the folder never sees half a message."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tmp = folder / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    async def send(self, notice: Notice) -> str:
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{notice.message_id.strip('<>').split('@')[0]}.eml"
        tmp = self.tmp / name
        try:
            with open(tmp, "wb") as f:
                f.write(notice.data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.folder / name)
        except OSError as e:
            raise TransientDeliveryError(f"cannot write to outbox {self.folder}: {e}") from None
        return f"written {name}"

    async def close(self) -> None:
        return None


def _refusal(code: int, text: str, command: str, what: str) -> Exception:
    cls = PermanentDeliveryError if code >= 500 else TransientDeliveryError
    return cls(f"relay refused {what}: {code} {text}", code=code, text=text, command=command)


def _wire_address(addr: str) -> bytes:
    """The MAIL/RCPT argument for ``addr``, as aiosmtplib's sendmail would send it."""
    if _DOT_ATOM.fullmatch(addr):
        return b"<" + addr.encode("ascii") + b">"
    return quote_address(addr).encode("ascii")  # quoted local parts and the like


class _PipeliningProtocol(SMTPProtocol):
    """aiosmtplib's protocol, able to read the replies to commands sent in one write
    (RFC 2920 PIPELINING). aiosmtplib drops data that arrives while a parsed reply
    waits to be picked up; while pipelined replies are outstanding they are kept."""

    _expect = 0

    def data_received(self, data: bytes) -> None:
        waiter = self._response_waiter
        if self._expect and waiter is not None:
            self._response_pending = True
            if waiter.done():
                self._buffer.extend(data)
                if len(self._buffer) > MAX_RESPONSE_LENGTH:
                    self.transport.close()  # type: ignore[union-attr]  # desynced: give up
                return
        super().data_received(data)

    async def _next_reply(self, timeout: float | None) -> aiosmtplib.SMTPResponse:
        waiter = self._response_waiter
        if waiter is not None and not waiter.done() and self._buffer:
            reply = self._read_response_from_buffer()  # a later reply already here
            if reply is not None:
                return reply
        self._response_pending = True
        return await self.read_response(timeout=timeout)

    async def pipelined(self, commands: bytes, count: int,
                        timeout: float | None) -> list[aiosmtplib.SMTPResponse]:
        """Write ``commands`` at once and read ``count`` replies, in order."""
        if self._command_lock is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        async with self._command_lock:
            self._expect = count
            try:
                self._response_pending = True
                self.write(commands)
                replies: list[aiosmtplib.SMTPResponse] = []
                while len(replies) < count:
                    replies.append(await self._next_reply(timeout))
                    self._expect = count - len(replies)
                return replies
            finally:
                self._expect = 0


async def _pipelined_sendmail(client: aiosmtplib.SMTP, sender: str, recipient: str,
                              data: bytes, pipelining: bool = True) -> str:
    """``client.sendmail(sender, [recipient], data)`` in two round trips instead of four:
    MAIL, RCPT and DATA in one write (the relay advertised PIPELINING), then the message.
    Raises what sendmail raises, for the same replies, and resets the envelope after a
    refusal as sendmail does. Without ``pipelining`` the same commands go one at a time,
    each only after the one before succeeded, as sendmail sends them (minus its costly
    re-parsing of both addresses, four times a mail)."""
    protocol = client.protocol
    assert protocol is not None
    if type(protocol) is SMTPProtocol:
        protocol.__class__ = _PipeliningProtocol
    assert isinstance(protocol, _PipeliningProtocol)
    timeout = client.timeout
    message = normalize_message_line_endings(data)
    mail = b"MAIL FROM:" + _wire_address(sender)
    if client.supports_extension("size"):
        mail += b" SIZE=%d" % len(message)
    try:
        try:
            rcpt = b"RCPT TO:" + _wire_address(recipient)
            if pipelining:
                mail_r, rcpt_r, data_r = await protocol.pipelined(
                    mail + b"\r\n" + rcpt + b"\r\nDATA\r\n", 3, timeout)
            else:
                mail_r = rcpt_r = data_r = _SKIPPED
                (mail_r,) = await protocol.pipelined(mail + b"\r\n", 1, timeout)
                if mail_r.code == 250:
                    (rcpt_r,) = await protocol.pipelined(rcpt + b"\r\n", 1, timeout)
                    if rcpt_r.code in (250, 251):
                        (data_r,) = await protocol.pipelined(b"DATA\r\n", 1, timeout)
            if 421 in (mail_r.code, rcpt_r.code, data_r.code):
                client.close()  # as aiosmtplib does on 421: the relay is going away
            if data_r.code == 354:
                # the relay took DATA although MAIL or RCPT failed: end an empty message
                end = b".\r\n" if mail_r.code != 250 or rcpt_r.code not in (250, 251) else (
                    PERIOD_REGEX.sub(b"..", message) + b".\r\n")
                (final,) = await protocol.pipelined(end, 1, timeout)
            if mail_r.code != 250:
                raise aiosmtplib.SMTPSenderRefused(mail_r.code, mail_r.message, sender)
            if rcpt_r.code not in (250, 251):
                raise aiosmtplib.SMTPRecipientsRefused(
                    [aiosmtplib.SMTPRecipientRefused(rcpt_r.code, rcpt_r.message, recipient)])
            if data_r.code != 354:
                raise aiosmtplib.SMTPDataError(data_r.code, data_r.message)
            if final.code != 250:
                raise aiosmtplib.SMTPDataError(final.code, final.message)
            return final.message
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            client.close()  # as aiosmtplib does: the protocol may be out of step
            raise
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        if client.is_connected:
            try:
                await client.rset()
            except (ConnectionError, aiosmtplib.SMTPResponseException):
                pass
        raise


_SKIPPED = aiosmtplib.SMTPResponse(-1, "not sent")  # a command not sent after a refusal


class _Conn:
    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.last_used = 0.0


class SmtpTransport:
    """A small pool of SMTP connections, each reused for many messages.

    A connection that errs is closed and transparently reopened on its next
    use. Only one recipient per transaction: each notice is its own envelope,
    so a refusal is always about exactly one patron.
    """

    def __init__(self, smtp: SmtpSettings) -> None:
        self.cfg = smtp
        self.pool: asyncio.LifoQueue[_Conn] = asyncio.LifoQueue()
        for _ in range(smtp.pool_size):
            self.pool.put_nowait(_Conn(self._client()))
        self.connects = 0  # how many TCP connections were opened (reuse is measurable)

    def _client(self) -> aiosmtplib.SMTP:
        return smtp_client(self.cfg)

    async def _ready(self, conn: _Conn) -> None:
        client = conn.client
        if client.is_connected and time.monotonic() - conn.last_used > IDLE_CHECK_S:
            try:
                await client.noop()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        if not client.is_connected:
            self.connects += 1
            try:
                await client.connect()
            except aiosmtplib.SMTPAuthenticationError as e:
                client.close()
                raise TransientDeliveryError(
                    f"relay {self.cfg.host}:{self.cfg.port} refused our login ({e.code} {e.message});"
                    " check [smtp] username and OMITAMA_NOTIFY_SMTP__PASSWORD", code=e.code,
                    text=e.message, command="AUTH") from None
            except (aiosmtplib.SMTPException, OSError) as e:
                client.close()
                raise TransientDeliveryError(
                    f"cannot connect to relay {self.cfg.host}:{self.cfg.port}: {e}") from None

    async def _sendmail(self, client: aiosmtplib.SMTP, notice: Notice) -> str:
        await client._ehlo_or_helo_if_needed()  # as sendmail does first
        if client.protocol is not None and type(client.protocol) in (SMTPProtocol,
                                                                     _PipeliningProtocol):
            return await _pipelined_sendmail(client, notice.sender, notice.recipient, notice.data,
                                             client.supports_extension("pipelining"))
        _, reply = await client.sendmail(notice.sender, [notice.recipient], notice.data)
        return reply

    async def send(self, notice: Notice) -> str:
        conn = await self.pool.get()
        try:
            await self._ready(conn)
            try:
                reply = await self._sendmail(conn.client, notice)
            except aiosmtplib.SMTPRecipientsRefused as e:
                r = e.recipients[0]
                raise _refusal(r.code, r.message, "RCPT", "the recipient") from None
            except aiosmtplib.SMTPSenderRefused as e:
                # About our From, not about the patron: never a bounce, always retried.
                raise TransientDeliveryError(
                    f"relay refused our sender {notice.sender}: {e.code} {e.message};"
                    " check [mail] from_address and the relay's policy",
                    code=e.code, text=e.message, command="MAIL") from None
            except aiosmtplib.SMTPDataError as e:
                raise _refusal(e.code, e.message, "DATA", "the message") from None
            except aiosmtplib.SMTPResponseException as e:
                conn.client.close()
                raise _refusal(e.code, e.message, "", "the transaction") from None
            except (aiosmtplib.SMTPException, OSError) as e:
                conn.client.close()
                raise TransientDeliveryError(f"relay connection failed: {e}") from None
            return reply
        finally:
            conn.last_used = time.monotonic()
            self.pool.put_nowait(conn)

    async def close(self) -> None:
        while not self.pool.empty():
            conn = self.pool.get_nowait()
            if conn.client.is_connected:
                try:
                    await conn.client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    conn.client.close()


def smtp_client(c: SmtpSettings) -> aiosmtplib.SMTP:
    """An unconnected client for the relay in ``[smtp]`` (TLS, certificates, login);
    ``connect()`` also logs in when a username is set. Used by the pool and by ``check``."""
    tls_context = None
    if (c.tls or c.starttls) and c.cert_bundle:
        tls_context = ssl.create_default_context(cafile=c.cert_bundle)
    return aiosmtplib.SMTP(
        hostname=c.host, port=c.port, timeout=c.timeout, use_tls=c.tls,
        start_tls=True if c.starttls else False, validate_certs=c.validate_certs,
        tls_context=tls_context, local_hostname=c.helo_name or None,
        username=c.username or None,
        password=(c.password.get_secret_value() or None) if c.username else None)


def make_transport(settings: Settings) -> Transport:
    if settings.mail.transport == "smtp":
        return SmtpTransport(settings.smtp)
    return OutboxTransport(settings.outbox_dir)
