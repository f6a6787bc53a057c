"""The bounce folder on an IMAP server (the city's mail server; Dovecot in the tests).

``imaps://user@host[:993]/FOLDER`` speaks TLS from the start; ``imap://user@host[:143]/
FOLDER`` upgrades with STARTTLS, and without it logs in only on loopback (a password
is never sent in clear over a network). Certificates are verified against the system's
store. The password comes from ``OMITAMA_NOTIFY_BOUNCES__PASSWORD``.

Mails are found with UID SEARCH, read with BODY.PEEK (no \\Seen set before they are
recorded), and moved with MOVE where offered, else COPY + \\Deleted + (UID) EXPUNGE.
New mail is awaited with IDLE where the server offers it, else by polling.
"""

from __future__ import annotations

import imaplib
import ipaddress
import socket
import ssl
import threading
from typing import Any, Collection
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from . import FOR_STAFF, PROCESSED

KEY = "[bounces] mailbox"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapBox:
    def __init__(self, conn: imaplib.IMAP4, name: str, folder: str) -> None:
        self.conn = conn
        self.name = name
        self.folder = folder
        self.stop = threading.Event()
        caps = {c.upper() for c in conn.capabilities}
        self.can_move, self.uidplus, self.idle = "MOVE" in caps, "UIDPLUS" in caps, "IDLE" in caps
        self._ok(conn.select(_quote(folder)), f"cannot open folder {folder}")
        for f in (PROCESSED, FOR_STAFF):
            typ, data = conn.list('""', _quote(f))
            if not [d for d in data if d]:
                self._ok(conn.create(_quote(f)), f"cannot create folder {f}")

    @classmethod
    def connect(cls, url: str, password: str, cafile: str | None = None,
                timeout: float = 30.0) -> "ImapBox":
        u = urlsplit(url)
        if not u.hostname or not u.username:
            raise ConfigError(KEY, "needs a user and a host: imaps://user@host/FOLDER")
        folder = unquote(u.path.lstrip("/")) or "INBOX"
        ctx = ssl.create_default_context(cafile=cafile)
        conn: imaplib.IMAP4
        if u.scheme == "imaps":
            conn = imaplib.IMAP4_SSL(u.hostname, u.port or 993, ssl_context=ctx, timeout=timeout)
        else:
            conn = imaplib.IMAP4(u.hostname, u.port or 143, timeout=timeout)
            if "STARTTLS" in conn.capabilities:
                conn.starttls(ssl_context=ctx)
            elif not _loopback(u.hostname):
                conn.logout()
                raise ConfigError(KEY, f"{u.hostname} offers no STARTTLS: use imaps:// "
                                       "(the password is never sent in clear)")
        try:
            conn.login(unquote(u.username), password)
        except imaplib.IMAP4.error as e:
            conn.logout()
            if "[UNAVAILABLE]" in str(e):
                # RFC 5530: the server's auth backend is busy or down, not a wrong password;
                # the watch tries again after [bounces] poll_s instead of stopping
                raise imaplib.IMAP4.error(f"{u.hostname}: login temporarily refused ({e})") from None
            raise ConfigError(KEY, f"{u.hostname} refused the login of {u.username} ({e}); "
                                   "check OMITAMA_NOTIFY_BOUNCES__PASSWORD") from None
        conn._get_capabilities()  # type: ignore[attr-defined]  # they change after login
        return cls(conn, f"{u.scheme}://{u.hostname}/{folder}", folder)

    @staticmethod
    def _ok(reply: tuple[str, list[Any]], what: str) -> list[Any]:
        typ, data = reply
        if typ != "OK":
            raise imaplib.IMAP4.error(f"{what}: {data}")
        return data

    def pending(self) -> list[str]:
        data = self._ok(self.conn.uid("SEARCH", "UNDELETED"), "SEARCH failed")
        return [u.decode() for u in (data[0] or b"").split()]

    def read(self, mail_id: str) -> bytes:
        data = self._ok(self.conn.uid("FETCH", mail_id, "(BODY.PEEK[])"), "FETCH failed")
        for part in data:
            if isinstance(part, tuple):
                return bytes(part[1])
        raise FileNotFoundError(f"mail UID {mail_id} is gone")

    def move(self, mail_id: str, folder: str) -> None:
        if self.can_move:
            self._ok(self.conn.uid("MOVE", mail_id, _quote(folder)), f"MOVE to {folder} failed")
            return
        self._ok(self.conn.uid("COPY", mail_id, _quote(folder)), f"COPY to {folder} failed")
        self._ok(self.conn.uid("STORE", mail_id, "+FLAGS.SILENT", r"(\Deleted)"), "STORE failed")
        if self.uidplus:
            self._ok(self.conn.uid("EXPUNGE", mail_id), "EXPUNGE failed")
        else:
            self._ok(self.conn.expunge(), "EXPUNGE failed")

    def wait(self, timeout: float, skip: Collection[str] = ()) -> None:
        """IDLE (RFC 2177) until the server reports new mail, ``timeout`` passes or
        ``stop`` is set; without IDLE, wait and let the next pass look."""
        if not self.idle:
            self.stop.wait(timeout)
            return
        c = self.conn
        tag = c._new_tag()  # type: ignore[attr-defined]
        c.send(tag + b" IDLE\r\n")
        if not c.readline().startswith(b"+"):
            raise imaplib.IMAP4.abort("server refused IDLE")
        sock = c.socket()
        before, left = sock.gettimeout(), timeout
        try:
            while left > 0 and not self.stop.is_set():
                sock.settimeout(min(1.0, left))
                try:
                    line = c.readline()
                except (socket.timeout, TimeoutError):
                    left -= 1.0
                    continue
                if not line:
                    raise imaplib.IMAP4.abort("server closed the connection during IDLE")
                if b"EXISTS" in line.upper() or b"RECENT" in line.upper():
                    break
        finally:
            sock.settimeout(before)
            c.send(b"DONE\r\n")
            while not c.readline().startswith(tag):
                pass

    def describe(self) -> str:
        n = len(self.pending())
        return (f"{self.name}: logged in, folder readable, {n} mail(s) waiting"
                f" ({'IDLE' if self.idle else 'polling'}, {'MOVE' if self.can_move else 'COPY'})")

    def close(self) -> None:
        try:
            self.conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
