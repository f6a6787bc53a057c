"""The patrons and the staff of the failover scenario (tests/failover_scenario.py).

The patrons the ILS's holds are for are set up active before anything starts (the
production transitions, tests.helpers.activate_many). Staff then approve pending
registrations one after another through the function the staff page and ``review
approve`` call (:func:`worker.app.registration.approve`), on a store built from the
run's settings — so through the Sentinels — and each approval is recorded with what
staff were told: confirmed (kept by a replica) or not.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.helpers import activate_many, set_contact
from worker.contact import ContactState
from worker.settings import Settings, load_settings
from worker.store.core import Store

STAFF = "S07"


@dataclass
class StaffAction:
    card: str
    at: float            # time.time() when staff were answered
    kept: bool           # staff were told it is confirmed (kept by a replica)
    said: str            # what staff were told, as they read it


def settings_of(env: dict[str, str]) -> Settings:
    return load_settings(environ={**os.environ, **env})


def _on_store(env: dict[str, str], fn: Any) -> Any:
    async def go() -> Any:
        store = Store.from_settings(settings_of(env))
        try:
            return await fn(store)
        finally:
            await store.close()
    return asyncio.run(go())


def patron_card(i: int) -> str:
    return f"21{i:08d}"  # as bench.common.hold_event names hold i's card


def staff_card(k: int) -> str:
    return f"31{k:08d}"


def set_up_patrons(env: dict[str, str], cards: int, staff_cards: int) -> list[tuple[str, str]]:
    """``cards`` active patrons (card i ↔ p{i}@example.jp) and ``staff_cards`` pending
    registrations; returns the pending ones, (card, address), in the order staff take them."""
    pending = [(staff_card(k), f"s{k}@example.jp") for k in range(staff_cards)]

    async def go(store: Store) -> None:
        await activate_many(store, {patron_card(i): f"p{i}@example.jp" for i in range(cards)},
                            why="failover setup")
        for card, address in pending:
            await set_contact(store, card, ContactState.PENDING, address=address)
    _on_store(env, go)
    return pending


def active_cards(env: dict[str, str], cards: list[str]) -> set[str]:
    async def go(store: Store) -> set[str]:
        return {c for c in cards if (await store.get_contact(c)).state == "active"}
    return _on_store(env, go)  # type: ignore[no-any-return]


class StaffDesk:
    """Approves the pending registrations one every ``every_s`` seconds on a thread until
    told to stop; an approval that fails is recorded as not confirmed, with the message
    staff saw."""

    def __init__(self, env: dict[str, str], pending: list[tuple[str, str]],
                 every_s: float) -> None:
        self.env, self.pending, self.every_s = env, list(pending), every_s
        self.actions: list[StaffAction] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()),
                                        name="staff-desk", daemon=True)

    def start(self) -> "StaffDesk":
        self._thread.start()
        return self

    def stop_soon(self) -> None:
        self._stop.set()

    def join(self) -> list[StaffAction]:
        self._stop.set()
        self._thread.join(60)
        return self.actions

    async def _run(self) -> None:
        from worker.app.registration import approve
        from worker.errors import NotifyError
        from worker.store.client import RedisError

        settings = settings_of(self.env)
        store = Store.from_settings(settings)
        try:
            for card, address in self.pending:
                if self._stop.is_set():
                    return
                try:
                    await approve(store, settings, card, STAFF, shown=address,
                                  reason="電話で本人確認")
                    kept, said = True, "approved"
                except (NotifyError, RedisError, OSError) as e:
                    kept, said = False, str(e)
                self.actions.append(StaffAction(card, time.time(), kept, said))
                await asyncio.sleep(self.every_s)
        finally:
            await store.close()
