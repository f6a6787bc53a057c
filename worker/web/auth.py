"""Staff accounts, sessions and CSRF tokens: the rules (stored by worker/store/staff.py);
throttling is in throttle.py.

- Passwords: argon2id (argon2-cffi's defaults, RFC 9106's second recommended profile);
  the hash is rehashed on login when the parameters change.
- Sessions: the signed cookie (Starlette's SessionMiddleware: itsdangerous, HttpOnly,
  SameSite=Lax, no Max-Age: it ends with the browser) carries only a random session id;
  the session itself (staff id, CSRF token, the account's epoch, last seen) is a Redis
  hash that expires ``[web] session_max_age_s`` after login, ends after
  ``session_idle_s`` without a page, and is deleted on logout.
- Every account has an *epoch*, a random value renewed by ``staff add``, ``staff passwd``
  and ``staff logout-all``; a session carries the epoch of its login and is dead once
  they differ. So a password change, or removing an account and adding it again, ends
  every session of it for good (a copied cookie included).
- CSRF: one random token per session, in a hidden field of every form, compared in
  constant time on every POST. The login form has its own token in the cookie.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import NotifyError
from ..settings import WebSettings
from ..store.core import Store, now_iso, now_ms
from .throttle import Throttle, Throttled

__all__ = ["Accounts", "AccountError", "Staff", "Throttled", "same_token"]

STAFF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 8

_hasher = PasswordHasher()
_dummy: list[str] = []


def _dummy_hash() -> str:
    """Verified against when the staff id is unknown, so both cases take the same time."""
    if not _dummy:
        _dummy.append(_hasher.hash(secrets.token_urlsafe(16)))
    return _dummy[0]


class AccountError(NotifyError):
    """A staff account cannot be created or changed as asked."""


def check_staff_id(staff_id: str) -> str:
    if not STAFF_ID.fullmatch(staff_id or ""):
        raise AccountError("a staff id is 1–64 letters, digits or . _ @ - (e.g. S01)")
    return staff_id


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    if any(ord(c) < 32 for c in password):
        raise AccountError("the password cannot contain control characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@dataclass(frozen=True)
class Staff:
    staff_id: str
    branch: str | None
    sid: str
    csrf: str


class Accounts:
    """Staff accounts and sessions (stored by :class:`worker.store.staff.StaffStore`)."""

    def __init__(self, store: Store, web: WebSettings) -> None:
        self.store = store
        self.db = store.staff
        self.web = web

    # -- accounts ----------------------------------------------------------------

    async def add(self, staff_id: str, password: str, branch: str | None = None, *,
                  replace: bool = False, by: str = "") -> None:
        """Create an account (or, with ``replace``, set its password and branch); ``by``
        names who did it (the OS user running the command) for the account log."""
        check_staff_id(staff_id)
        check_password(password)
        fields = {"hash": hash_password(password), "branch": branch or "",
                  "updated_at": now_iso(), "epoch": secrets.token_urlsafe(12)}
        if replace:
            if not await self.db.update_account(staff_id, fields):
                raise AccountError(f"there is no staff account {staff_id}")
            await self.db.end_sessions(staff_id)  # the new epoch ends them anyway
            await self._log(staff_id, "password set", by, branch)
            return
        if not await self.db.create_account(staff_id, fields):
            raise AccountError(f"staff account {staff_id} already exists "
                               f"(omitama-notify staff passwd {staff_id} sets a new password)")
        await self.db.end_sessions(staff_id)  # sessions of an earlier account of that id
        await self._log(staff_id, "created", by, branch)

    async def branch(self, staff_id: str) -> str | None:
        """The account's branch (None: none set, or no such account)."""
        return (await self.db.account(staff_id)).get("branch") or None

    async def remove(self, staff_id: str, by: str = "") -> bool:
        removed = await self.db.delete_account(staff_id)
        await self.db.end_sessions(staff_id)
        if removed:
            await self._log(staff_id, "removed", by)
        return removed

    async def logout_all(self, staff_id: str, by: str = "") -> int:
        """End every session of an account (a new epoch, and the sessions deleted);
        returns how many were live."""
        if not await self.db.update_account(staff_id, {"epoch": secrets.token_urlsafe(12)}):
            raise AccountError(f"there is no staff account {staff_id}")
        ended = await self.db.end_sessions(staff_id)
        await self._log(staff_id, "logged out everywhere", by)
        return ended

    async def end_sessions(self, staff_id: str) -> int:
        return await self.db.end_sessions(staff_id)

    async def active_sessions(self, staff_id: str) -> int:
        """Live sessions of an account."""
        return await self.db.live_sessions(staff_id)

    async def _log(self, staff_id: str, what: str, by: str, branch: str | None = None) -> None:
        # never the password or its hash: who, what, when
        await self.db.log_change({"at": now_iso(), "staff_id": staff_id, "what": what,
                                  "branch": branch or "", "by": by})

    async def log(self) -> list[dict[str, str]]:
        """Every account change, oldest first."""
        return await self.db.changes()

    async def list(self) -> list[dict[str, str]]:
        rows = []
        for staff_id, h in await self.db.accounts():
            rows.append({"staff_id": staff_id, "branch": h.get("branch", ""),
                         "created_at": h.get("created_at", ""),
                         "sessions": await self.active_sessions(staff_id)})
        return sorted(rows, key=lambda r: r["staff_id"])

    # -- logging in ----------------------------------------------------------------

    async def login(self, staff_id: str, password: str, addr: str) -> Login | None:
        """Check the password; returns the new session, or None. Raises
        :class:`Throttled` when this client may not try now (see throttle.py)."""
        staff_id = staff_id.strip()[:64]
        throttle = Throttle(self.store, self.web)
        await throttle.check(staff_id, addr)
        h = await self.db.account(staff_id) if STAFF_ID.fullmatch(staff_id) else {}
        try:
            _hasher.verify(h.get("hash") or _dummy_hash(), password)
            ok = bool(h.get("hash"))
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            await throttle.failed(staff_id, addr, bool(h))
            return None
        if _hasher.check_needs_rehash(h["hash"]):
            await self.db.update_account(staff_id, {"hash": hash_password(password)})
        missed = await throttle.succeeded(staff_id, addr)
        sid = secrets.token_urlsafe(32)
        await self.db.open_session(sid, staff_id, {
            "csrf": secrets.token_urlsafe(32), "epoch": h.get("epoch", ""),
            "created_at": now_iso(), "seen_ms": now_ms()}, self.web.session_max_age_s)
        return Login(sid, missed)

    async def session(self, sid: str | None) -> Staff | None:
        """The staff member of a live session (and whose account still exists)."""
        if not sid or not isinstance(sid, str):
            return None
        s: dict[str, Any] = await self.db.session(sid)
        if not s.get("staff"):
            return None
        account = await self.db.account(s["staff"])
        now = now_ms()
        idle = now - int(s.get("seen_ms") or 0) > self.web.session_idle_s * 1000
        if not account or s.get("epoch", "") != account.get("epoch", "") or idle:
            await self.logout(sid)
            return None
        await self.db.touch_session(sid, now)
        return Staff(s["staff"], account.get("branch") or None, sid, s["csrf"])

    async def logout(self, sid: str) -> None:
        await self.db.delete_session(sid)


@dataclass(frozen=True)
class Login:
    sid: str
    missed: int  # wrong passwords given for this id since its last good login


def same_token(given: Any, expected: str | None) -> bool:
    return (isinstance(given, str) and bool(expected)
            and secrets.compare_digest(given.encode(), str(expected).encode()))
