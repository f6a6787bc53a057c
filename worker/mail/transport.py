"""Mail transports: the SMTP relay (pooled aiosmtplib connections) and the outbox.

Both take a finished :class:`~worker.mail.compose.Notice` and either hand it over or
raise :class:`TransientDeliveryError` (try again later) /
:class:`PermanentDeliveryError` (the relay refused this recipient or message).

A send may be given a deadline (the hold's lease, see worker/app/holds.py). The relay
keeps a message only once it has read the final "." (RFC 5321 §4.1.1.4), so the
deadline bounds everything before it — the wait for a pooled connection, connecting,
MAIL/RCPT/DATA — and the message goes out only while a whole ``[smtp] timeout``
is left for the relay's reply, or once the caller extended its deadline by that much;
from there on the send is never cut short, and ends by the deadline anyway (reply or
read timeout). A connection given up mid-transaction is reset, not closed
(``pipelining.abandon``): what this host had not yet got across is dropped, never
delivered later.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from pathlib import Path
from typing import Awaitable, Callable, Protocol

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol

from .compose import Notice
from ..errors import PermanentDeliveryError, TransientDeliveryError
from .pipelining import PipeliningProtocol, abandon, pipelined_sendmail
from ..settings import Settings, SmtpSettings

# A pooled connection idle longer than this is checked with NOOP before use:
# relays drop idle clients, and finding out mid-transaction would cost a retry.
IDLE_CHECK_S = 10.0


class Transport(Protocol):
    async def send(self, notice: Notice, deadline: float | None = None,
                   extend: Extend | None = None) -> str: ...
    async def close(self) -> None: ...


class OutboxTransport:
    """Writes each message as ``<time>-<token>.eml``, atomically (temp file + rename),
    so a reader of the folder never sees half a message."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tmp = folder / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    async def send(self, notice: Notice, deadline: float | None = None,
                   extend: Extend | None = None) -> str:
        # a local file write: over long before any deadline, and not to be cut short
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


class _NoTimeLeft(Exception):
    """Too little of the send's deadline is left to wait for the relay's reply to the
    message: it is not sent (raised with the connection mid-DATA, so it must be closed)."""


# ``extend(seconds)``: make the caller's deadline (the hold's lease) last at least that
# much longer from now; False when it cannot (another worker took the hold over)
Extend = Callable[[float], Awaitable[bool]]
Gate = Callable[[int], Awaitable[None]]


def _message_gate(bound: asyncio.Timeout, reply_s: float, extend: Extend | None) -> Gate:
    """``before_message(replies)``: let the message go out only if ``replies`` whole
    read timeouts fit before the deadline, or the deadline could be extended to fit
    them; then lift the deadline for the rest of the send, which the relay may accept."""
    async def gate(replies: int) -> None:
        when = bound.when()
        if when is None:
            return
        need = replies * reply_s
        if when - asyncio.get_running_loop().time() < need:
            # the slow case only (a slow relay, or a lease shorter than the timeout)
            if extend is None or not await extend(need):
                raise _NoTimeLeft
            if bound.expired():  # the deadline passed while extend() ran (its Redis round
                raise _NoTimeLeft  # trip took the cancellation): too late to lift it
        bound.reschedule(None)
    return gate


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

    async def _sendmail(self, client: aiosmtplib.SMTP, notice: Notice,
                        gate: Gate) -> str:
        await client._ehlo_or_helo_if_needed()  # as sendmail does first
        if client.protocol is not None and type(client.protocol) in (SMTPProtocol,
                                                                     PipeliningProtocol):
            return await pipelined_sendmail(client, notice.sender, notice.recipient, notice.data,
                                             client.supports_extension("pipelining"), gate)
        await gate(4)  # sendmail's MAIL, RCPT, DATA and the message, all past the gate
        _, reply = await client.sendmail(notice.sender, [notice.recipient], notice.data)
        return reply

    async def send(self, notice: Notice, deadline: float | None = None,
                   extend: Extend | None = None) -> str:
        """Hand ``notice`` to the relay; ``deadline`` (the running loop's ``time()``,
        made later by ``extend`` when the reply to the message needs it) bounds the send
        as the module's docstring says: past it, TransientDeliveryError and the relay
        has not got the message."""
        bound = asyncio.timeout_at(deadline)
        conn: _Conn | None = None
        try:
            async with bound:
                conn = await self.pool.get()
                await self._ready(conn)
                gate = _message_gate(bound, self.cfg.timeout, extend)
                return await self._transaction(conn, notice, gate)
        except (TimeoutError, _NoTimeLeft) as e:
            if conn is not None:
                abandon(conn.client)  # cut mid-command or mid-DATA: out of step
            if isinstance(e, TimeoutError) and not bound.expired():
                raise
            where = "waiting for a free connection" if conn is None else "before the message"
            raise TransientDeliveryError(
                f"send abandoned {where}: the relay is too slow for the time the hold's"
                " lease leaves ([delivery] lease_s, [smtp] timeout)") from None
        except (TransientDeliveryError, PermanentDeliveryError):
            raise
        except BaseException:
            if conn is not None:  # cancelled, or extend() failed (Redis): maybe mid-DATA
                abandon(conn.client)
            raise
        finally:
            if conn is not None:
                conn.last_used = time.monotonic()
                self.pool.put_nowait(conn)

    async def _transaction(self, conn: _Conn, notice: Notice, gate: Gate) -> str:
        """One transaction on a ready connection, its errors as ours."""
        try:
            reply = await self._sendmail(conn.client, notice, gate)
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
            abandon(conn.client)  # a timeout may leave the message half sent: never later
            raise TransientDeliveryError(f"relay connection failed: {e}") from None
        return reply

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
