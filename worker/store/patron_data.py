"""Redis I/O of a patron's data on request: find everything held about a card, remove it.

Records name a card in three ways: by key (``patron:{card}``, ``audit:{card}``,
``sent:{card}``), by a ``card_number`` field (holds, call-list entries, failures, the
bounce log, refused events, VERP tokens) and through the card's hold ids (``called``,
``notice:{token}``) or address keys (``address:{key}``, ``bouncescore:{key}``). Finding
them scans the holds and tokens: a staff command, run rarely, not a hot path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from redis.exceptions import WatchError

from ..contact import CallReason
from ..holds.calls import call_due, call_entry
from ..holds.retention import after_forget, retention_s
from .replicas import confirm_staff_write
from .base import Conn, _dumps, now_iso
from .vocab import HoldOutcome, HoldStatus

# the receipt code's salted hash is shown as present, never as its value
_SECRET_FIELDS = ("code_salt", "code_hash")
_ADDRESS_KEY_FIELDS = ("key", "pending_key", "suspended_key")


@dataclass
class Found:
    """Everything held about one card (raw values, for export and for removal)."""

    card: str
    patron: dict[str, str] = field(default_factory=dict)
    audit: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    holds: dict[str, dict[str, str]] = field(default_factory=dict)
    calls: dict[str, str] = field(default_factory=dict)
    called: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    bounces: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    verp: dict[str, str] = field(default_factory=dict)
    address_keys: list[str] = field(default_factory=list)
    outcomes: dict[str, dict[str, str]] = field(default_factory=dict)  # stream id → entry
    gathers: list[str] = field(default_factory=list)  # open digest windows' keys
    due: list[str] = field(default_factory=list)  # their entries in gather_due (name the card)
    # hold_ready events for the card still in dramatiq's queues, for holds never claimed
    # (no record yet): hold_id → {"pickup_branch", "pickup_by"} as the event names them
    queued: dict[str, dict[str, str]] = field(default_factory=dict)

    def export(self) -> dict[str, Any]:
        """The disclosure: every record, JSON decoded where it is JSON."""
        patron = {k: ("(hashed; kept)" if k in _SECRET_FIELDS else v)
                  for k, v in self.patron.items()}
        return {"card_number": self.card, "patron": patron,
                "audit": [_load(x) for x in self.audit],
                "recent_notices": self.sent,
                "holds": {h: {k: (_load(v) if k in ("event", "called_entry") else v)
                              for k, v in rec.items()} for h, rec in self.holds.items()},
                "call_list": [_load(x) for x in self.calls.values()],
                "calls_made": [_load(x) for x in self.called],
                "failures": [_load(x) for x in self.failures],
                "bounce_mails": [_load(x) for x in self.bounces],
                "refused_events": [_load(x) for x in self.refused.values()],
                "return_path_tokens": [_load(x) for x in self.verp.values()],
                "outcomes": list(self.outcomes.values())}

    def counts(self) -> dict[str, int]:
        return {"patron": int(bool(self.patron)), "audit": len(self.audit),
                "recent_notices": len(self.sent), "holds": len(self.holds),
                "call_list": len(self.calls), "calls_made": len(self.called),
                "failures": len(self.failures), "bounce_mails": len(self.bounces),
                "refused_events": len(self.refused), "return_path_tokens": len(self.verp),
                "outcomes": len(self.outcomes)}


def _load(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _hold_of(raw: str) -> str:
    rec = _load(raw)
    hold_id = rec.get("hold_id") if isinstance(rec, dict) else None
    return hold_id if isinstance(hold_id, str) else ""


def _of(raw: str, card: str) -> bool:
    """Whether a JSON record names ``card`` in its ``card_number`` (or, for a refused
    event, in the payload it kept raw)."""
    rec = _load(raw)
    if not isinstance(rec, dict):
        return False
    if rec.get("card_number") == card or rec.get("card") == card:
        return True
    inner = _load(rec["raw"]) if isinstance(rec.get("raw"), str) else None
    return isinstance(inner, dict) and inner.get("card_number") == card


def _queued_hold(raw: str, card: str) -> tuple[str, dict[str, str]] | None:
    """(hold_id, where and until when) of a queued dramatiq message carrying a hold_ready
    event for ``card``; None for anything else (other cards, other events, damage)."""
    msg = _load(raw)
    args = msg.get("args") if isinstance(msg, dict) else None
    ev = args[0] if isinstance(args, list) and args and isinstance(args[0], dict) else {}
    if ev.get("type") != "hold_ready" or ev.get("card_number") != card \
            or not isinstance(ev.get("hold_id"), str):
        return None
    return ev["hold_id"], {f: ev[f] for f in ("pickup_branch", "pickup_by")
                           if isinstance(ev.get(f), str)}


class PatronData:
    def __init__(self, store: Conn) -> None:
        self.s = store
        self.r = store.r
        self.k = store.k

    async def find(self, card: str, namespace: str = "") -> Found:
        """Everything about ``card``; with dramatiq's ``namespace``, also the hold_ready
        events for it still waiting in a queue for a hold never seen (:attr:`Found.queued`)."""
        k, r = self.k, self.r
        f = Found(card, patron=await r.hgetall(k.patron(card)),
                  audit=await r.lrange(k.audit(card), 0, -1),
                  sent=await r.lrange(k.sent(card), 0, -1))
        f.address_keys = [f.patron[x] for x in _ADDRESS_KEY_FIELDS if f.patron.get(x)]
        cut = len(k.hold(""))
        async for key in r.scan_iter(k.hold("*"), count=500):
            if await r.hget(key, "card_number") == card:
                f.holds[key[cut:]] = await r.hgetall(key)
        f.calls = {h: v for h, v in (await r.hgetall(k.calls)).items() if _of(v, card)}
        f.called = [x for x in await r.lrange(k.called, 0, -1)
                    if _hold_of(x) in f.holds or _hold_of(x) in f.calls]
        f.failures = [x for x in await r.lrange(k.failures, 0, -1) if _of(x, card)]
        f.bounces = [x for x in await r.lrange(k.bounces, 0, -1) if _of(x, card)]
        f.refused = {fp: v for fp, v in (await r.hgetall(k.rejected)).items() if _of(v, card)}
        async for key in r.scan_iter(k.verp("*"), count=500):
            raw = await r.get(key)
            if raw and _of(raw, card):
                f.verp[key] = raw
        # the outcome stream (worker/store/outcomes.py), bounded by [outcomes] maxlen
        start = "-"
        while True:
            rows: list[tuple[str, dict[str, str]]] = list(
                await r.xrange(k.outcomes, start, "+", count=1000) or [])  # type: ignore[arg-type]
            f.outcomes.update({i: e for i, e in rows if e.get("card_number") == card})
            if len(rows) < 1000:
                break
            start = "(" + rows[-1][0]
        f.gathers = [key async for key in r.scan_iter(k.gather(card, "*"), count=500)
                     if key.endswith(":" + card)]
        f.due = [e async for e, _ in r.zscan_iter(k.gather_due) if e.endswith(" " + card)]
        if namespace:
            async for key in r.scan_iter(f"{namespace}:*.msgs", count=100):
                for raw in await r.hvals(key):
                    hold = _queued_hold(raw, card)
                    if hold and hold[0] not in f.holds:
                        f.queued[hold[0]] = hold[1]
        return f

    async def remove(self, f: Found, audit_entry: dict[str, Any], now: datetime,
                     keep_days: int) -> int | None:
        """Remove everything in ``f``; the card's audit log becomes the one ``audit_entry``
        saying so. Each value is removed by exact match: what came since stays.

        A hold's record is not deleted but stripped to what names the hold
        (:func:`worker.holds.retention.after_forget`): a message still queued for it — a
        digest window's, a retry's — would otherwise claim a hold never seen and store
        its event, title and name again. A hold whose patron was not yet told is listed
        for a call as ``forgotten`` (no card, no title). Its token goes too, so a send in
        flight records nothing ("lost"). A hold whose event still waits in a queue, never
        claimed, gets such a record too (kept ``keep_days`` past its pickup window, as a
        claim would): its message then finds it listed. The number of holds listed; None
        when one of the holds changed while this ran (find again and retry)."""
        k = self.k
        listed = 0
        try:
            async with self.r.pipeline(transaction=True) as p:
                if f.holds or f.queued:  # read again under WATCH: decided on what EXEC changes
                    await p.watch(*(k.hold(h) for h in {*f.holds, *f.queued}))
                holds = {h: (await p.hgetall(k.hold(h)), await p.pttl(k.hold(h))) for h in f.holds}
                for h, where in f.queued.items():
                    if await p.exists(k.hold(h)):
                        return None  # claimed since find(): it names the card now
                    holds[h] = ({"status": HoldStatus.RETRYING, **where},
                                _queued_ttl_ms(where.get("pickup_by", ""), now, keep_days))
                p.multi()
                p.delete(k.patron(f.card), k.sent(f.card), k.audit(f.card))
                p.rpush(k.audit(f.card), _dumps({"at": now_iso(), **audit_entry}))
                p.zrem(k.pending, f.card)
                p.srem(k.suspended, f.card)
                for key in f.address_keys:
                    p.srem(k.address(key), f.card)
                for hold_id in {*f.holds, *f.calls}:
                    p.hdel(k.calls, hold_id)
                    p.zrem(k.calls_due, hold_id)
                    p.zrem(k.inflight, hold_id)
                for hold_id, (rec, ttl_ms) in holds.items():
                    if rec.get("notice"):
                        p.delete(k.notice(rec["notice"]))
                    p.delete(k.hold(hold_id))
                    if not rec:  # expired meanwhile
                        continue
                    listed += self._strip(p, hold_id, rec, ttl_ms, now)
                for lst, values in ((k.called, f.called), (k.failures, f.failures),
                                    (k.bounces, f.bounces)):
                    for v in values:
                        p.lrem(lst, 1, v)
                for fp in f.refused:
                    p.hdel(k.rejected, fp)
                    p.zrem(k.rejected_order, fp)
                for key in f.verp:
                    p.delete(key)
                if f.outcomes:
                    p.xdel(k.outcomes, *f.outcomes)
                for key in f.gathers:
                    p.delete(key)
                if f.due:
                    p.zrem(k.gather_due, *f.due)
                for hold_id in f.holds:
                    p.zrem(k.reminders, hold_id)
                await p.execute()
        except WatchError:
            return None
        for key in f.address_keys:  # the address's bounce score, once no card holds it
            if not await self.r.exists(k.address(key)):
                await self.r.delete(k.bounce_score(key))
        # a staff action: forgotten data must not come back with a failover (a repeat of
        # `patron forget` leaves the same state: its one audit line)
        await confirm_staff_write(self.s)
        return listed

    def _strip(self, p: Any, hold_id: str, rec: dict[str, str], ttl_ms: int,
               now: datetime) -> int:
        """Queue the stripped record of one hold (and its listing, if any) on ``p``."""
        kept, listed = after_forget(rec, now)
        if listed:
            kept.update(status=HoldStatus.PHONED, reason=CallReason.FORGOTTEN.value)
            try:
                last: date | None = date.fromisoformat(kept.get("pickup_by", ""))
            except ValueError:
                last = None
            p.hset(self.k.calls, hold_id, _dumps(call_entry(
                hold_id=hold_id, card_number=None, pickup_branch=kept.get("pickup_branch"),
                pickup_by=last, reason=CallReason.FORGOTTEN, title=None, added_at=now)))
            p.zadd(self.k.calls_due, {hold_id: call_due(last, now.date())})
        p.hset(self.k.hold(hold_id), mapping={**kept, "forgotten": now_iso()})
        if ttl_ms > 0:
            p.pexpire(self.k.hold(hold_id), ttl_ms)
        if listed and rec.get("status") != HoldStatus.PHONED:  # a new outcome: now listed
            p.xadd(self.k.outcomes, {"hold_id": hold_id, "card_number": "",
                                     "outcome": HoldOutcome.LISTED,
                                     "reason": CallReason.FORGOTTEN.value,
                                     "message_id": "", "at": now_iso()},
                   maxlen=self.s.outcomes_maxlen, approximate=True)
        return int(listed)


def _queued_ttl_ms(pickup_by: str, now: datetime, keep_days: int) -> int:
    try:
        last = date.fromisoformat(pickup_by)
    except ValueError:
        last = now.date()
    return retention_s(last, now, keep_days) * 1000
