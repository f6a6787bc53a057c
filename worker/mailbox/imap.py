"""The bounce folder on an IMAP server (the city's mail server; Dovecot in the tests).

``imaps://user@host[:993]/FOLDER`` speaks TLS from the start; ``imap://user@host[:143]/
FOLDER`` upgrades with STARTTLS, and without it logs in only on loopback (a password
is never sent in clear over a network). Certificates are verified against the system's
store. The password comes from ``OMITAMA_NOTIFY_BOUNCES__PASSWORD``.

Mails are found with UID SEARCH, read with BODY.PEEK (no \\Seen set before they are
recorded), and moved with MOVE where offered, else COPY + \\Deleted + (UID) EXPUNGE.
New mail is awaited with IDLE where the server offers it, else by polling.

The protocol is IMAPClient's (a well-kept library over imaplib): its IDLE waits on the
socket with poll(), where a read with a socket timeout — what this module did by hand —
leaves imaplib's file object unusable after the first timeout ("cannot read from timed
out object"): every wait failed after a second and the watch logged in again each poll_s.
"""

from __future__ import annotations

import imaplib
import ipaddress
import logging
import ssl
import threading
import time
from typing import Any, Collection
from urllib.parse import unquote, urlsplit

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from ..errors import ConfigError
from . import FOR_STAFF, PROCESSED

KEY = "[bounces] mailbox"
# RFC 2177: a client should end IDLE and start it again within 29 minutes, or the server
# may log it out as inactive
IDLE_MOST_S = 25 * 60
log = logging.getLogger(__name__)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class ImapBox:
    def __init__(self, conn: IMAPClient, name: str, folder: str) -> None:
        self.conn = conn
        self.name = name
        self.folder = folder
        self.stop = threading.Event()
        caps = set(conn.capabilities())
        self.can_move, self.uidplus, self.idle = (b"MOVE" in caps, b"UIDPLUS" in caps,
                                                  b"IDLE" in caps)
        conn.select_folder(folder)
        for f in (PROCESSED, FOR_STAFF):
            if not conn.folder_exists(f):
                conn.create_folder(f)

    @classmethod
    def connect(cls, url: str, password: str, cafile: str | None = None,
                timeout: float = 30.0) -> "ImapBox":
        u = urlsplit(url)
        if not u.hostname or not u.username:
            raise ConfigError(KEY, "needs a user and a host: imaps://user@host/FOLDER")
        folder = unquote(u.path.lstrip("/")) or "INBOX"
        ctx = ssl.create_default_context(cafile=cafile)
        tls = u.scheme == "imaps"
        conn = IMAPClient(u.hostname, u.port or (993 if tls else 143), ssl=tls,
                          ssl_context=ctx, timeout=timeout)
        try:
            if not tls:
                if b"STARTTLS" in conn.capabilities():
                    conn.starttls(ctx)
                elif not _loopback(u.hostname):
                    raise ConfigError(KEY, f"{u.hostname} offers no STARTTLS: use imaps:// "
                                           "(the password is never sent in clear)")
            conn.login(unquote(u.username), password)
        except LoginError as e:
            conn.shutdown()
            if "[UNAVAILABLE]" in str(e):
                # RFC 5530: the server's auth backend is busy or down, not a wrong password;
                # the watch tries again after [bounces] poll_s instead of stopping
                raise imaplib.IMAP4.error(f"{u.hostname}: login temporarily refused ({e})") from None
            raise ConfigError(KEY, f"{u.hostname} refused the login of {u.username} ({e}); "
                                   "check OMITAMA_NOTIFY_BOUNCES__PASSWORD") from None
        except BaseException:
            conn.shutdown()
            raise
        name = f"{u.scheme}://{u.hostname}/{folder}"
        log.info("bounce mailbox %s: logged in as %s", name, unquote(u.username))
        return cls(conn, name, folder)

    def pending(self) -> list[str]:
        # what the server said along with earlier replies: from here on, an EXISTS (new
        # mail) is one that this search may have missed (see wait); cleared, too, so the
        # EXPUNGE list of every mail moved does not grow for the life of the connection
        self._untagged().clear()
        return [str(uid) for uid in self.conn.search(["UNDELETED"])]

    def _untagged(self) -> dict[str, Any]:
        # imaplib's record of untagged replies, under IMAPClient (which reads it too)
        return self.conn._imap.untagged_responses  # type: ignore[no-any-return]

    def read(self, mail_id: str) -> bytes:
        got = self.conn.fetch([int(mail_id)], ["BODY.PEEK[]"]).get(int(mail_id), {})
        body = got.get(b"BODY[]")
        if body is None:
            raise FileNotFoundError(f"mail UID {mail_id} is gone")
        return bytes(body)

    def move(self, mail_id: str, folder: str) -> None:
        uid = [int(mail_id)]
        if self.can_move:
            self.conn.move(uid, folder)
            return
        self.conn.copy(uid, folder)
        self.conn.delete_messages(uid, silent=True)
        if self.uidplus:
            self.conn.uid_expunge(uid)
        else:
            self.conn.expunge()

    def wait(self, timeout: float, skip: Collection[str] = ()) -> None:
        """IDLE (RFC 2177) until the server reports new mail, ``timeout`` passes or
        ``stop`` is set; without IDLE, wait and let the next pass look."""
        if not self.idle:
            self.stop.wait(timeout)
            return
        if "EXISTS" in self._untagged():
            # new mail came during the pass, announced along with a reply after the
            # search; the server says so only once, so IDLE would not wake for it
            return
        deadline = time.monotonic() + min(timeout, IDLE_MOST_S)
        hung_up = 0
        self.conn.idle()
        # on an error the watch drops the connection: DONE only on the way out of a wait
        while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
            step = min(1.0, left)
            started = time.monotonic()
            replies = self.conn.idle_check(timeout=step)
            if any(r[0] == b"BYE" for r in replies):
                raise imaplib.IMAP4.abort("the server ended the connection during IDLE")
            if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in replies):
                break
            # a closed connection is "readable" with nothing to read: idle_check comes
            # back at once, empty (it takes EOF for "no more lines"); never spin on it
            quick = not replies and time.monotonic() - started < step / 2
            hung_up = hung_up + 1 if quick else 0
            if hung_up >= 3:
                raise imaplib.IMAP4.abort("the server closed the connection during IDLE")
        self.conn.idle_done()

    def describe(self) -> str:
        n = len(self.pending())
        return (f"{self.name}: logged in, folder readable, {n} mail(s) waiting"
                f" ({'IDLE' if self.idle else 'polling'}, {'MOVE' if self.can_move else 'COPY'})")

    def close(self) -> None:
        try:
            self.conn.logout()
        except (imaplib.IMAP4.error, OSError):
            self.conn.shutdown()
