"""Redis I/O of digest windows (worker/app/digest.py): join, take, finish together."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from ..contact import Contact
from .base import Conn, _dumps, now_iso, now_ms
from .outcomes import outcome_args
from .scripts import lua
from .vocab import GatherVerdict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Joined:
    verdict: GatherVerdict
    gather_id: str = ""
    wait_ms: int = 0


@dataclass(frozen=True)
class JoinAsked:
    """A digest window to join at the claim (``Store.claim_hold``): the card's at the
    branch, or a new one ``window_ms`` long named ``new_id``."""
    card: str
    branch: str
    window_ms: int
    new_id: str


def joined(res: list[Any]) -> Joined:
    """A join's reply (gather_join.lua, or claim_hold.lua's join) read."""
    if res[0] == GatherVerdict.WAIT:
        return Joined(GatherVerdict.WAIT, res[2], int(res[1]))
    if res[0] == GatherVerdict.DUE:
        return Joined(GatherVerdict.DUE, res[1])
    return Joined(GatherVerdict.LOST)


@dataclass(frozen=True)
class DueWindow:
    """A window whose end has come (an entry of ``gather_due``), to be sent."""
    card: str
    branch: str
    gather_id: str


def window_where(card: str, branch: str) -> str:
    """What names a card's window at a branch in its ``gather_due`` entry: ``"{branch}
    {card}"``. A card number never has a space (worker/ils/events.py); a branch id is the
    settings' key and might, so an entry is read with the card as its last word."""
    return f"{branch} {card}"


def due_entry(card: str, branch: str, gather_id: str) -> str:
    """A window's entry in ``gather_due``: ``"{gather_id} {branch} {card}"``."""
    return f"{gather_id} {window_where(card, branch)}"


def read_entry(entry: str) -> DueWindow | None:
    """The window a ``gather_due`` entry names, or None when it is not one of ours."""
    gather_id, _, rest = entry.partition(" ")
    branch, _, card = rest.rpartition(" ")
    return DueWindow(card, branch, gather_id) if gather_id and branch and card else None


class DigestStore:
    """Built by the store with the two fenced hold writes it shares with single notices
    (``finish_hold.lua`` wrapped with its outcomes, and the store's lease extension) and
    its reading of a contact record."""

    def __init__(self, store: Conn, finish: AsyncScript,
                 extend_lease: Callable[[str, str, int], Awaitable[bool]],
                 contact: Callable[[str, dict[str, str]], Contact]) -> None:
        self.s = store
        self._finish = finish
        self._extend_lease = extend_lease
        self._contact = contact
        self.r = store.r
        self.k = store.k
        self._join = self.r.register_script(lua("gather_join"))
        self._take = self.r.register_script(lua("gather_take"))
        self._crash = self.r.register_script(lua("gather_crash"))
        self._due = self.r.register_script(lua("gather_due"))

    async def join(self, hold_id: str, token: str, card: str, branch: str, *, window_ms: int,
                   lease_ms: int, new_id: str, again: bool = False) -> Joined:
        """``again``: the hold joins after its digest failed (one attempt more)."""
        res = await self._join(
            keys=[self.k.hold(hold_id), self.k.gather(card, branch), self.k.inflight,
                  self.k.gather_due],
            args=[token, hold_id, now_ms(), window_ms, lease_ms, new_id,
                  window_ms // 1000 + 86400, int(again), window_where(card, branch)])
        return joined(res)

    async def take(self, card: str, branch: str, gather_id: str, token: str, lease_ms: int
                   ) -> tuple[list[tuple[str, dict[str, str]]], Contact] | None:
        """The holds of window ``gather_id`` now owned by ``token``, each with its record
        (none may be left: all cancelled or listed meanwhile), and the card's contact read
        by the same script (as the claim reads it); None when another worker took the
        window. Its entry in ``gather_due`` goes either way."""
        keys = [self.k.gather(card, branch), self.k.inflight, self.k.gather_taken(token),
                self.k.gather_due, self.k.patron(card)]
        args = [gather_id, token, now_ms(), lease_ms, self.k.hold(""),
                due_entry(card, branch, gather_id)]
        res = await self._take(keys=keys, args=args)
        if res is None:
            return None
        h = dict(zip(res[0][::2], res[0][1::2]))
        return ([(res[i], dict(zip(res[i + 1][::2], res[i + 1][1::2])))
                 for i in range(1, len(res), 2)], self._contact(card, h))

    async def due(self, most: int, own_ms: int) -> tuple[list[DueWindow], int | None]:
        """Up to ``most`` windows whose end has come, this caller's for ``own_ms`` (the
        other processes leave them alone meanwhile; ``gather_due.lua``), and the end (ms)
        of the next window not yet due (None: none open)."""
        got = await self._due(keys=[self.k.gather_due], args=[now_ms(), most, own_ms])
        out, junk = [], []
        for entry in got[1:]:
            w = read_entry(entry)
            if w is None:
                junk.append(entry)
            else:
                out.append(w)
        if junk:  # not written by a join (by hand, a bug): dropped, so no poll stalls on it
            log.error("gather_due: %d entries that name no window dropped: %s", len(junk),
                      ", ".join(repr(e[:80]) for e in junk[:5]))
            await self.r.zrem(self.k.gather_due, *junk)
        return out, int(float(got[0])) if got[0] else None

    async def waiting(self) -> tuple[int, int | None]:
        """How many windows are open (entries of ``gather_due``) and the earliest end (ms;
        None: none) — for ``check``."""
        async with self.r.pipeline(transaction=False) as p:
            p.zcard(self.k.gather_due)
            p.zrange(self.k.gather_due, 0, 0, withscores=True)
            n, first = await p.execute()
        return int(n), int(first[0][1]) if first else None

    async def crashed(self, token: str, hold_ids: list[str], error: str) -> int:
        """The send of digest ``token`` raised after its take: one crash more on each of
        ``hold_ids`` it still owns, ``error`` kept as the reason (``gather_crash.lua``)."""
        return int(await self._crash(keys=[], args=[token, error, self.k.hold(""), *hold_ids]))

    async def finish_all(self, outcomes: list[tuple[str, str, dict[str, Any], dict[str, Any] | None, int]],
                         token: str, card: str) -> list[str]:
        """finish_hold for every hold of one digest — (hold_id, outcome, fields, call, due)
        — in one MULTI/EXEC: the mail's holds are recorded together or not at all."""
        got = await self._finish_all(outcomes, token, card)
        if any(isinstance(x, NoScriptError) for x in got):
            # the server lost its script cache (a restart): every EVALSHA of the MULTI
            # failed alike, so nothing was written; load it and record them again (was
            # a SCRIPT LOAD round trip before every digest's MULTI)
            await self.r.script_load(self._finish.script)
            got = await self._finish_all(outcomes, token, card)
        for x in got:
            if isinstance(x, Exception):
                raise x
        return [str(x) for x in got]

    async def _finish_all(self, outcomes: list[tuple[str, str, dict[str, Any], dict[str, Any] | None, int]],
                          token: str, card: str) -> list[Any]:
        async with self.r.pipeline(transaction=True) as p:
            for hold_id, outcome, fields, call, due in outcomes:
                args: list[Any] = [outcome, token, hold_id, _dumps(call) if call else "", due]
                for k, v in fields.items():
                    args += [k, v if isinstance(v, str) else _dumps(v)]
                keys = [self.k.hold(hold_id), self.k.calls, self.k.calls_due, self.k.sent(card),
                        self.k.patron(card), self.k.inflight, self.k.outcomes]
                p.evalsha(self._finish.sha, len(keys), *keys, *args,
                          *outcome_args(self.s.outcomes_maxlen, now_iso()))
            return list(await p.execute(raise_on_error=False))

    async def name_notice(self, token: str, hold_id: str, ttl_s: int) -> None:
        """``notice:TOKEN`` names the digest's first hold (its Message-ID's token), kept
        ``ttl_s`` — as long as that hold (the caller's retention rule; a round trip less
        than reading the hold's TTL)."""
        await self.r.set(self.k.notice(token), hold_id, ex=ttl_s)

    async def extend_all(self, hold_ids: list[str], token: str, until_ms: int) -> bool:
        ok = True
        for h in hold_ids:
            ok = await self._extend_lease(h, token, until_ms) and ok
        return ok

