"""Failures our sender caused: one alert for staff, never the patron's doing.

A failure whose cause is the library's side (authentication failed, our IP or domain
blocked or of bad reputation, no reverse DNS, our sender refused: ``sender_problem`` on
the classified result, worker/bounces/model.py) gives no bounce points and suspends no
address (worker/app/bounce_effects.py); the hold still goes to the call list. Here it
raises — or adds to — the one open alert: the failures page shows it once, at the top,
with how many patrons it stopped and what to ask the DNS administrator for; ``check``
shows the last one. Staff close it once DNS is fixed, a staff action like the others:
audited (who closed it) and confirmed by the replicas.
"""

from __future__ import annotations

from typing import Any

from ..bounces.failures import REASON_JA
from ..errors import AlreadyDone
from ..store.core import Store


async def raise_alert(store: Store, entry: dict[str, Any], cards: list[str]) -> None:
    """Count one more failure (``entry``: its failure row) into the open alert."""
    alerts = store.sender_problems
    keep = {k: entry.get(k) for k in ("reason", "status", "diagnostic", "advice", "source")}
    await alerts.note(keep, [c for c in cards if c])


async def record_failure(store: Store, entry: dict[str, Any], card: str) -> None:
    """Record a failure row that no bounce step follows (a send given up when its retry
    horizon ran out, worker/app/hold_mail.py); one our sender caused also counts into the
    alert, since the failures page shows such rows only through it."""
    await store.add_failure(entry)
    if entry.get("sender_problem"):
        await raise_alert(store, entry, [card])


async def current(store: Store) -> dict[str, Any] | None:
    """The open alert: the last failure, when the first came, how many, how many patrons."""
    alert = await store.sender_problems.get()
    if alert is not None:
        alert["reason_ja"] = REASON_JA.get(alert.get("reason") or "", "図書館の送信元の問題")
    return alert


async def close(store: Store, staff: str) -> dict[str, Any]:
    """Staff close the alert once DNS is fixed: who closed it, and what it counted, is
    kept in the same step; confirmed by replicas as every staff action (``NotConfirmed``:
    repeat it). :class:`~worker.errors.AlreadyDone` when no alert is open (a repeat)."""
    closed = await store.sender_problems.close(staff)
    if closed is None:
        raise AlreadyDone("no sender-problem alert is open (closed already); nothing was "
                          "changed", kind="already_sender_fixed")
    return closed
