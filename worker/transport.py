"""Mail transports: the SMTP relay (pooled aiosmtplib connections) and the outbox.

Both take a finished :class:`~worker.compose.Notice` and either hand it over or
raise :class:`TransientDeliveryError` (try again later) /
:class:`PermanentDeliveryError` (the relay refused this recipient or message).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from pathlib import Path
from typing import Protocol

import aiosmtplib

from .compose import Notice
from .errors import PermanentDeliveryError, TransientDeliveryError
from .settings import Settings, SmtpSettings

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
        c = self.cfg
        tls_context = None
        if (c.tls or c.starttls) and c.cert_bundle:
            tls_context = ssl.create_default_context(cafile=c.cert_bundle)
        return aiosmtplib.SMTP(
            hostname=c.host, port=c.port, timeout=c.timeout, use_tls=c.tls,
            start_tls=True if c.starttls else False, validate_certs=c.validate_certs,
            tls_context=tls_context, local_hostname=c.helo_name or None,
            username=c.username or None,
            password=c.password.get_secret_value() or None if c.username else None)

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

    async def send(self, notice: Notice) -> str:
        conn = await self.pool.get()
        try:
            await self._ready(conn)
            try:
                _, reply = await conn.client.sendmail(notice.sender, [notice.recipient],
                                                      notice.data)
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


def make_transport(settings: Settings) -> Transport:
    if settings.mail.transport == "smtp":
        return SmtpTransport(settings.smtp)
    return OutboxTransport(settings.outbox_dir)
