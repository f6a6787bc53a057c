"""SMTP transactions in two round trips (RFC 2920 PIPELINING) on aiosmtplib's client.

aiosmtplib's ``sendmail`` sends MAIL, RCPT and DATA one by one and re-parses both
addresses four times a mail; :func:`pipelined_sendmail` writes them at once when the
relay allows it. Used by :class:`worker.mail.transport.SmtpTransport`.

This reaches into aiosmtplib's internals, checked against **aiosmtplib 5.1.3** (pinned
``>=5.1.3,<5.2`` in pyproject.toml): the protocol's class is swapped for
:class:`PipeliningProtocol`, which uses ``_response_waiter``, ``_response_pending``,
``_buffer``, ``_command_lock`` and ``_read_response_from_buffer``; the transport calls
``SMTP._ehlo_or_helo_if_needed``; ``MAX_RESPONSE_LENGTH``, ``PERIOD_REGEX`` and
``normalize_message_line_endings`` come from ``aiosmtplib.protocol`` (5.1.2 and older
have neither ``MAX_RESPONSE_LENGTH`` nor ``_response_pending``). A protocol of another
class (a later aiosmtplib) makes the transport fall back to aiosmtplib's own
``sendmail``. tests/test_smtp_pipelining.py runs every case against aiosmtpd with and
without PIPELINING.
"""

from __future__ import annotations

import re
import socket
import struct
from typing import Awaitable, Callable

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import (MAX_RESPONSE_LENGTH, PERIOD_REGEX, SMTPProtocol,
                                 normalize_message_line_endings)

# A plain dot-atom address: aiosmtplib's quote_address() gives exactly ``<addr>`` for it
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                       r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def abandon(client: aiosmtplib.SMTP) -> None:
    """Close a connection given up mid-transaction (a timeout, a cancelled or failed send)
    with a reset: SO_LINGER 0 makes the kernel drop whatever of ours it has not yet
    delivered. A plain close would still deliver it — the rest of a message — whenever the
    network lets it: to a relay that then accepts a mail we counted as not sent, perhaps
    after another worker took the hold over and sent it (a host cut off mid-message,
    tests/test_partition.py). A send given up must never reach the relay later."""
    transport = client.transport
    if transport is not None and not transport.is_closing():
        sock = transport.get_extra_info("socket")
        try:
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # not a TCP socket: a plain close is all there is
        transport.abort()  # type: ignore[attr-defined]
    client.close()


def _wire_address(addr: str) -> bytes:
    """The MAIL/RCPT argument for ``addr``, as aiosmtplib's sendmail would send it."""
    if _DOT_ATOM.fullmatch(addr):
        return b"<" + addr.encode("ascii") + b">"
    return quote_address(addr).encode("ascii")  # quoted local parts and the like


class PipeliningProtocol(SMTPProtocol):
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


async def pipelined_sendmail(client: aiosmtplib.SMTP, sender: str, recipient: str,
                              data: bytes, pipelining: bool = True,
                              before_message: Callable[[int], Awaitable[None]] | None = None,
                              ) -> str:
    """``client.sendmail(sender, [recipient], data)`` in two round trips instead of four:
    MAIL, RCPT and DATA in one write (the relay advertised PIPELINING), then the message.
    Raises what sendmail raises, for the same replies, and resets the envelope after a
    refusal as sendmail does. Without ``pipelining`` the same commands go one at a time,
    each only after the one before succeeded, as sendmail sends them (minus its costly
    re-parsing of both addresses, four times a mail). ``before_message(1)`` is awaited
    just before the message is sent (it may refuse by raising)."""
    protocol = client.protocol
    assert protocol is not None
    if type(protocol) is SMTPProtocol:
        protocol.__class__ = PipeliningProtocol
    assert isinstance(protocol, PipeliningProtocol)
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
                if mail_r.code != 250 or rcpt_r.code not in (250, 251):
                    # the relay took DATA although MAIL or RCPT failed: end an empty message
                    end = b".\r\n"
                else:
                    if before_message is not None:
                        await before_message(1)
                    end = PERIOD_REGEX.sub(b"..", message) + b".\r\n"
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
            abandon(client)  # the protocol may be out of step, the message half sent
            raise
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        if client.is_connected:
            try:
                await client.rset()
            except (ConnectionError, aiosmtplib.SMTPResponseException):
                pass
        raise


_SKIPPED = aiosmtplib.SMTPResponse(-1, "not sent")  # a command not sent after a refusal
