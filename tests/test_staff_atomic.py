"""Issue 24 #2: every staff action and its audit line are one step.

The process acting is "killed" before each command it would send to Redis in turn — the
connection is cut and nothing after it runs, as when the process dies there — on a
real Redis. Whatever the point, the action and its audit line are both there or both
absent: never a call marked (or undone, approved, rejected, re-enabled, removed) that
the patron's audit log does not account for.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

from tests.helpers import hold_event, set_contact
from worker.contact import ContactState
from worker.store.core import Store
from worker.store.keys import Keys


class Killed(BaseException):
    """The process died here (a BaseException: no handler of the code under test sees it)."""


class DyingConnection(Connection):
    """Sends ``left[0]`` more commands (or pipelines), then dies before the next."""

    left = [0]

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if DyingConnection.left[0] <= 0:
            self._writer = None  # nothing more leaves this process
            raise Killed()
        DyingConnection.left[0] -= 1
        await super().send_packed_command(command, check_health)


def dying_store(settings: Any, sends: int) -> Store:
    DyingConnection.left[0] = sends
    client = aioredis.Redis.from_url(settings.redis.url, decode_responses=True,
                                     connection_class=DyingConnection)
    return Store(client, Keys(settings.redis.key_prefix), settings.redis.url)


async def _abandon(store: Store) -> None:
    """Drop the dead process's connections without a word to Redis."""
    try:
        await store.r.connection_pool.disconnect(inuse_connections=True)
    except (Exception, Killed):  # noqa: BLE001 - a dead connection may not close cleanly
        pass


Setup = Callable[[Store, str], Awaitable[None]]
Act = Callable[[Store, Any, str], Awaitable[Any]]
Done = Callable[[Store, str], Awaitable[bool]]


async def _listed(store: Store, settings: Any, card: str) -> None:
    from worker.app import holds
    from worker.ils.events import parse_event
    from worker.runtime import Runtime

    rt = Runtime.create(settings)
    try:
        ev = parse_event(hold_event(f"H{card}", card, contact="phone"), set(settings.branches))
        await holds.notify_hold_ready(rt, ev)
    finally:
        await rt.close()


async def _status(store: Store, card: str) -> str:
    return (await store.get_hold(f"H{card}")).get("status", "")


async def _state(store: Store, card: str) -> str:
    return (await store.r.hget(store.k.patron(card), "state")) or "none"


def _acts() -> dict[str, tuple[Callable[[Store, Any, str], Awaitable[None]], Act, Done, str]]:
    from worker.app import calls, registration, suspension

    async def listed(st: Store, s: Any, card: str) -> None:
        await _listed(st, s, card)

    async def called(st: Store, s: Any, card: str) -> None:
        await _listed(st, s, card)
        await calls.mark_called(st, f"H{card}", "S01")

    async def pending(st: Store, s: Any, card: str) -> None:
        await set_contact(st, card, ContactState.PENDING)

    async def suspended(st: Store, s: Any, card: str) -> None:
        await set_contact(st, card, ContactState.SUSPENDED)

    async def active(st: Store, s: Any, card: str) -> None:
        await set_contact(st, card, ContactState.ACTIVE)

    async def is_called(st: Store, card: str) -> bool:
        return await _status(st, card) == "called"

    async def is_back(st: Store, card: str) -> bool:
        return await _status(st, card) == "phoned"

    def state_is(want: str) -> Done:
        async def done(st: Store, card: str) -> bool:
            return await _state(st, card) == want
        return done

    return {
        "mark": (listed, lambda st, s, c: calls.mark_called(st, f"H{c}", "S02", "話した"),
                 is_called, "called"),
        "undo": (called, lambda st, s, c: calls.uncall(st, f"H{c}", "S02", "押し間違い"),
                 is_back, "uncalled"),
        "approve": (pending, lambda st, s, c: registration.approve(
            st, s, c, "S02", code="000000", shown=f"setup-{c}"), state_is("active"), "approved"),
        "approve without code": (pending, lambda st, s, c: registration.approve(
            st, s, c, "S02", reason="来館", shown=f"setup-{c}"), state_is("active"),
            "approved_without_code"),
        "reject": (pending, lambda st, s, c: registration.reject(
            st, c, "S02", "番号が違う", shown=f"setup-{c}"), state_is("none"), "rejected"),
        "re-enable": (suspended, lambda st, s, c: suspension.reenable(st, c, "S02", "設定変更"),
                      state_is("active"), "reenabled"),
        "remove": (active, lambda st, s, c: suspension.remove_address(st, c, "S02", "解約"),
                   state_is("none"), "removed"),
    }


@pytest.mark.parametrize("name", list(_acts()))
def test_a_kill_at_any_point_leaves_the_action_and_its_audit_line_together(clean_redis,
                                                                           settings, name):
    setup, act, done, kind = _acts()[name]

    async def go() -> list[str]:
        seen = []
        for sends in range(60):
            card = f"K{uuid.uuid4().hex[:6]}"
            store = Store.from_settings(settings)
            try:
                await setup(store, settings, card)
                dying = dying_store(settings, sends)
                finished = True
                try:
                    await act(dying, settings, card)
                except Killed:
                    finished = False
                finally:
                    await _abandon(dying)
                changed = await done(store, card)
                logged = [e for e in await store.history(card) if e.get("kind") == kind]
                seen.append(f"{sends}: changed={changed} logged={len(logged)}")
                assert changed == (len(logged) == 1) and len(logged) <= 1, seen
                if finished:
                    assert changed, seen
                    return seen
            finally:
                await store.close()
        raise AssertionError(f"{name} never finished: {seen}")

    seen = asyncio.run(go())
    assert len(seen) >= 2  # there was a point to kill it at
