"""The only Redis I/O of the worker (dramatiq's broker aside).

Atomic steps are Lua scripts in ``worker/store/lua/`` (loaded once per client);
key names come from :mod:`worker.store.keys`. Every method is async: the actors run
on dramatiq's event-loop thread, the CLI under ``asyncio.run``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..contact import Contact, ContactState
from ..errors import StoreError
from ..holds.retention import HOLD_PERSONAL_FIELDS, UNDO_KEEPS
from ..mail.compose import notice_token
from .base import Conn, _dumps, arrival_us, now_iso, now_ms, safe_url
from .bounces import BounceStore, SenderProblemStore
from .connect import aclose, async_client, describe
from .contacts import Registry
from .stats import StatsStore
from .digest import DigestStore, JoinAsked, Joined, joined, window_where
from .hold_states import HoldStates
from .keys import Keys
from .kept_secrets import notice_secret
from .outcomes import DEFAULT_MAXLEN, with_outcomes
from .patron_data import PatronData
from .reminders import ReminderStore
from .replicas import confirm_staff_write
from .retention import RetentionStore
from .staff import StaffStore
from .scripts import lua
from .vocab import ClaimVerdict, HoldStatus

if TYPE_CHECKING:
    from ..settings import RedisSettings, Settings



@dataclass(frozen=True)
class Claim:
    verdict: ClaimVerdict   # CLAIMED | DONE | BUSY
    token: str = ""         # this claim's own token: only it can record the outcome
    attempts: int = 0
    first_ms: int = 0
    status: str = ""        # for DONE: the status (a HoldStatus) the hold already has
    busy_ms: int = 0        # for BUSY: how long the other worker's lease still runs
    contact: Contact | None = None  # the patron's contact, when asked for with the claim
    notice: str = ""        # the notice's token (its Message-ID), the same for every claim
    first_event: str = ""   # the event the hold was first claimed with, when not this one
    joined: Joined | None = None  # the digest window joined at the claim, when asked and done


__all__ = ["Claim", "Store", "arrival_us", "now_iso", "now_ms", "safe_url"]


def _card_of(entry: str | None) -> str:
    """The card a stored call-list entry names ("" when none or unreadable)."""
    try:
        card = json.loads(entry or "{}").get("card_number")
    except (ValueError, AttributeError):
        return ""
    return card if isinstance(card, str) else ""


def _audit_arg(card: str, audit: dict[str, Any]) -> str:
    """The audit line as a call-list script appends it ("" for an entry without a card:
    there is no patron log to write to)."""
    return _dumps({"at": now_iso(), **audit}) if card else ""


class Store(Conn):
    """The store: holds, the call list, audit logs, failures and refusals here; the rest
    in the sub-stores, built once with it on the same client and used as its attributes
    (``store.contacts.apply(…)``), never constructed at a call site."""

    def __init__(self, client: aioredis.Redis, keys: Keys, url: str = "",
                 outcomes_maxlen: int = DEFAULT_MAXLEN, *, staff_replicas: int = 0,
                 staff_timeout_ms: int = 500) -> None:
        super().__init__(client, keys, url, outcomes_maxlen, staff_replicas=staff_replicas,
                         staff_timeout_ms=staff_timeout_ms)
        self._claim = client.register_script(lua("claim_hold"))
        # the scripts that change a hold's state also append its outcome (store/outcomes.py)
        self._finish = client.register_script(with_outcomes("finish_hold"))
        self._extend = client.register_script(lua("extend_lease"))
        self._close = client.register_script(with_outcomes("close_hold"))
        self._called = client.register_script(with_outcomes("mark_called"))
        self._uncalled = client.register_script(with_outcomes("uncall"))
        self.contacts = Registry(self)
        self.bounces = BounceStore(self)
        self.sender_problems = SenderProblemStore(self)
        self.digest = DigestStore(self, self._finish, self.extend_lease, self._contact)
        self.reminders = ReminderStore(self)
        self.retention = RetentionStore(self)
        self.patron_data = PatronData(self)
        self.staff = StaffStore(self)
        self.stats = StatsStore(self)
        self.hold_states = HoldStates(self)  # what `holds missing` reads
        self._notice_secret: bytes | None = None  # read once (it never changes)

    @classmethod
    def connect(cls, where: "RedisSettings | str", prefix: str,
                outcomes_maxlen: int = DEFAULT_MAXLEN, *, staff_replicas: int = 0,
                staff_timeout_ms: int = 500) -> "Store":
        """``where``: the ``[redis]`` settings (one Redis or Sentinel), or a plain URL."""
        return cls(async_client(where), Keys(prefix), describe(where), outcomes_maxlen,
                   staff_replicas=staff_replicas, staff_timeout_ms=staff_timeout_ms)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "Store":
        """The store every command and process uses: ``[redis] url`` (or its Sentinels)
        and ``key_prefix``, the outcome stream trimmed to ``[outcomes] maxlen``, staff
        actions confirmed by ``[staff_writes] replicas``."""
        return cls.connect(settings.redis, settings.redis.key_prefix,
                           settings.outcomes.maxlen,
                           staff_replicas=settings.staff_writes.replicas,
                           staff_timeout_ms=settings.staff_writes.timeout_ms)

    async def close(self) -> None:
        await aclose(self.r)

    async def ping(self) -> None:
        try:
            await self.r.ping()
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            raise StoreError(f"cannot reach Redis at {safe_url(self.url)}: {e}") from None

    async def server_version(self) -> str:
        return str((await self.r.info("server")).get("redis_version", "?"))

    async def connected_replicas(self) -> int:
        """Replicas connected to the primary now (what ``[staff_writes] replicas`` waits for)."""
        return int((await self.r.info("replication")).get("connected_slaves", 0))

    # -- patrons ---------------------------------------------------------------

    async def get_contact(self, card: str) -> Contact:
        return self._contact(card, await self.r.hgetall(self.k.patron(card)))

    @staticmethod
    def _contact(card: str, h: dict[str, str]) -> Contact:
        if not h:
            return Contact(card)
        return Contact(card, ContactState(h.get("state", ContactState.NONE)),
                       h.get("address") or None, h.get("envelope") or None,
                       h.get("pending_address") or None)

    async def audit(self, card: str, entry: dict[str, Any]) -> None:
        await self.r.rpush(self.k.audit(card), _dumps({"at": now_iso(), **entry}))

    async def history(self, card: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in await self.r.lrange(self.k.audit(card), 0, -1)]

    # -- holds -----------------------------------------------------------------

    async def notice_name(self, hold_ids: list[str]) -> str:
        """The notice token of a mail of ``hold_ids`` (one hold: its own notice's; a
        digest: its set's), the same every time (worker/mail/compose.py ``notice_token``)."""
        if self._notice_secret is None:
            self._notice_secret = await notice_secret(self.r, self.k)
        return notice_token(self._notice_secret, hold_ids)

    async def claim_hold(self, hold_id: str, *, token: str, lease_ms: int, ttl_s: int,
                         fields: dict[str, str], contact_of: str | None = None,
                         join: JoinAsked | None = None) -> Claim:
        """Claim a hold (``claim_hold.lua``) with a ``token`` never used before: it fences
        the claim (see :meth:`finish_hold`). ``fields`` (kept by the first claim) begin
        with ``event``: a later claim with another event gets the first one back
        (``Claim.first_event``). With ``contact_of`` the claim script also reads the
        patron's contact (one round trip per notice less; one script call, not a pipeline
        of the claim and an HGETALL: ~25 µs less per notice, bench/README.md). The read
        changes no outcome. The notice token (the Message-ID's) is derived from the hold
        id, so it is the same for every claim of the hold, even one after its record was
        lost (:meth:`notice_name`). With ``join`` (and ``contact_of``) a claimed hold also
        joins its digest window in the same call, when the card and branch it was first
        claimed for are the join's (``Claim.joined``; claim_hold.lua says why that is safe)."""
        notice = await self.notice_name([hold_id])
        keys = [self.k.hold(hold_id), self.k.notice(notice), self.k.inflight]
        spec = ""
        if contact_of is not None:
            keys.append(self.k.patron(contact_of))
            if join is not None:
                keys += [self.k.gather(join.card, join.branch), self.k.gather_due]
                spec = (f"{join.window_ms} {join.new_id} {join.window_ms // 1000 + 86400} "
                        f"{ContactState.ACTIVE} {window_where(join.card, join.branch)}")
        args: list[Any] = [now_ms(), lease_ms, token, hold_id, ttl_s, notice, spec]
        for k, v in fields.items():
            args += [k, v]
        res = await self._claim(keys=keys, args=args)
        if res[0] == ClaimVerdict.CLAIMED:
            contact = None
            if contact_of is not None:
                flat = res[6]
                contact = self._contact(contact_of, dict(zip(flat[::2], flat[1::2])))
            return Claim(ClaimVerdict.CLAIMED, token=res[1], attempts=int(res[2]),
                         first_ms=int(res[3]), contact=contact, notice=res[4],
                         first_event=res[5], joined=joined(res[7]) if res[7] else None)
        if res[0] == ClaimVerdict.BUSY:
            return Claim(ClaimVerdict.BUSY, busy_ms=int(res[1]))
        return Claim(ClaimVerdict.DONE, status=res[1], first_event=res[2] if len(res) > 2 else "")

    async def extend_lease(self, hold_id: str, token: str, until_ms: int) -> bool:
        """Make the lease of the claim holding ``token`` run at least until ``until_ms``
        (``extend_lease.lua``); False when that claim no longer owns the hold."""
        look_again = until_ms + (until_ms - now_ms())  # as a claim: after two leases
        return bool(await self._extend(keys=[self.k.hold(hold_id), self.k.inflight],
                                       args=[token, until_ms, hold_id, look_again]))

    async def finish_hold(self, hold_id: str, outcome: HoldStatus, token: str, *, card: str = "",
                          fields: dict[str, Any] | None = None,
                          call: dict[str, Any] | None = None, due: int = 0) -> str:
        """Record the outcome (SENT, PHONED or RETRYING) of the claim holding ``token``
        (``finish_hold.lua``). Returns the hold's status afterwards, or
        ``ClaimVerdict.LOST`` when a later claim took the hold over (this one's lease ran
        out): then nothing was written (``MISSING``: the hold expired)."""
        args: list[Any] = [outcome, token, hold_id, _dumps(call) if call else "", due]
        for k, v in (fields or {}).items():
            args += [k, v if isinstance(v, str) else _dumps(v)]
        return await self._finish(keys=[self.k.hold(hold_id), self.k.calls, self.k.calls_due,
                                        self.k.sent(card), self.k.patron(card), self.k.inflight,
                                        self.k.outcomes],
                                  args=args + self.outcome_args())

    async def close_hold(self, hold_id: str, status: HoldStatus, ttl_s: int) -> str:
        """Record CANCELLED or PICKED_UP (``close_hold.lua``); the status before, or
        ``ClaimVerdict.UNSEEN`` for a hold never seen. Its title and the patron's name go
        at once (worker/holds/retention.py)."""
        return await self._close(keys=[self.k.hold(hold_id), self.k.calls, self.k.calls_due,
                                       self.k.inflight, self.k.outcomes],
                                 args=[status, hold_id, now_ms(), ttl_s, *HOLD_PERSONAL_FIELDS,
                                       *self.outcome_args()])

    async def get_hold(self, hold_id: str) -> dict[str, str]:
        return await self.r.hgetall(self.k.hold(hold_id))

    async def get_holds(self, hold_ids: list[str]) -> list[dict[str, str]]:
        """Several holds in one round trip (a digest's, a reminder pass's)."""
        async with self.r.pipeline(transaction=False) as p:
            for h in hold_ids:
                p.hgetall(self.k.hold(h))
            return list(await p.execute())

    async def hold_for_token(self, token: str) -> str | None:
        return await self.r.get(self.k.notice(token))

    # -- the phone-call list ---------------------------------------------------

    async def calls(self, branch: str | None = None) -> list[dict[str, Any]]:
        ids = await self.r.zrange(self.k.calls_due, 0, -1)
        if not ids:
            return []
        rows = [json.loads(x) for x in await self.r.hmget(self.k.calls, ids) if x]
        return [r for r in rows if branch is None or r.get("pickup_branch") == branch]

    async def events_and_states(self, holds: list[tuple[str, str]]
                                ) -> list[tuple[str | None, str | None]]:
        """(stored event, patron's state) of each (hold_id, card), in one round trip."""
        async with self.r.pipeline(transaction=False) as p:
            for hold_id, card in holds:
                p.hget(self.k.hold(hold_id), "event")
                p.hget(self.k.patron(card), "state")
            got = await p.execute()
        return list(zip(got[::2], got[1::2]))

    async def mark_called(self, hold_id: str, record: dict[str, Any],
                          audit: dict[str, Any]) -> dict[str, Any] | None:
        """Take a hold off the call list (``mark_called.lua``) and append ``audit`` (its
        branch filled from the entry) to the patron's audit log in the same step; None
        when the hold is not on the list. A staff action: confirmed by replicas
        (``replicas.confirm_staff_write``), also when nothing was left to do."""
        entry = await self.r.hget(self.k.calls, hold_id)
        return await self._staff_call(self._called, _card_of(entry), lambda card: dict(
            keys=[self.k.calls, self.k.calls_due, self.k.hold(hold_id), self.k.called,
                  self.k.audit(card), self.k.outcomes],
            args=[hold_id, _dumps({"at": now_iso(), **record}), now_ms(),
                  # no call-list field dropped now: the entry is kept whole while undo
                  # is offered; the purge drops it after (worker/holds/retention.py)
                  "[]", card, _audit_arg(card, audit),
                  *(f for f in HOLD_PERSONAL_FIELDS if f not in UNDO_KEEPS),
                  *self.outcome_args()]))

    async def uncall(self, hold_id: str, record: dict[str, Any],
                     audit: dict[str, Any]) -> dict[str, Any] | None:
        """Undo :meth:`mark_called` (``uncall.lua``), ``audit`` appended in the same step;
        None when there is nothing to undo. Confirmed by replicas as ``mark_called``."""
        entry = await self.r.hget(self.k.hold(hold_id), "called_entry")
        return await self._staff_call(self._uncalled, _card_of(entry), lambda card: dict(
            keys=[self.k.calls, self.k.calls_due, self.k.hold(hold_id), self.k.called,
                  self.k.audit(card), self.k.outcomes],
            args=[hold_id, _dumps({"at": now_iso(), "undo": True, **record}), card,
                  _audit_arg(card, audit), *self.outcome_args()]))

    async def _staff_call(self, script: Any, card: str,
                          call: Callable[[str], dict[str, Any]]) -> dict[str, Any] | None:
        """Run a call-list script whose audit key is the card of the entry read just
        before; if the entry changed to another card meanwhile, once more with that one.
        Then the replicas' confirmation of the staff action."""
        for _ in range(3):
            res = await script(**call(card))
            if isinstance(res, list):  # [CallVerdict.OTHER_CARD, card]
                card = str(res[1])
                continue
            await confirm_staff_write(self)
            return json.loads(res) if res else None
        raise StoreError("the call-list entry kept changing its card; nothing was changed")

    async def call_state(self, hold_id: str) -> tuple[str | None, bool]:
        """(the hold's status, whether it is on the call list): is a repeated mark or undo
        already done?"""
        async with self.r.pipeline(transaction=False) as p:
            p.hget(self.k.hold(hold_id), "status")
            p.hexists(self.k.calls, hold_id)
            status, listed = await p.execute()
        return status, bool(listed)

    async def recently_called(self, n: int = 20) -> list[dict[str, Any]]:
        """The last ``n`` records of ``called`` (marked and undone), newest first."""
        return [json.loads(x) for x in reversed(await self.r.lrange(self.k.called, -n, -1))]

    # -- delivery failures and refused events ----------------------------------

    async def add_failure(self, entry: dict[str, Any]) -> None:
        await self.r.rpush(self.k.failures, _dumps({"at": now_iso(), **entry}))

    async def failures(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in await self.r.lrange(self.k.failures, 0, -1)]

    async def add_rejected(self, fingerprint: str, entry: dict[str, Any]) -> bool:
        """Keep a refused event once per fingerprint; False if it was already kept."""
        added = await self.r.hsetnx(self.k.rejected, fingerprint,
                                    _dumps({"received_at": now_iso(), **entry}))
        if added:
            # µs, not ms: refusals within one millisecond used to tie and come out in
            # fingerprint order (entries kept in ms before still sort first)
            await self.r.zadd(self.k.rejected_order, {fingerprint: arrival_us()})
        return bool(added)

    async def rejected(self) -> list[dict[str, Any]]:
        ids = await self.r.zrange(self.k.rejected_order, 0, -1)
        if not ids:
            return []
        return [json.loads(x) for x in await self.r.hmget(self.k.rejected, ids) if x]
