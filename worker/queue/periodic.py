"""Periodic jobs in each worker process: one daemon thread, one event loop, one Runtime.

The daily purge of personal data and the pickup-reminder pass are both "every so often,
on the store, whatever another process is doing": each is idempotent across processes
(the purge takes the day's marker in Redis, SET NX, worker/store/retention.py; a hold's
reminder is taken by one pass only, remind_take.lua), so every worker process runs them
and the first to come does the work. They share this one thread and one Runtime (store,
relay pool), built once when the thread starts — not a Runtime per pass. A job that fails
is logged and tried again at its next turn; it never stops the others. The sweeper and
the metrics refresher are threads of their own on a synchronous client
(worker/queue/sweeper.py, worker/queue/metrics.py): they must run while this loop waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import date
from typing import Awaitable, Callable

from ..app.reminders import run_pass
from ..app.retention import daily_purge
from ..holds.retention import purge_due
from ..jdate import now_tokyo
from ..runtime import Runtime
from ..settings import Settings

log = logging.getLogger(__name__)
PURGE_CHECK_S = 300.0   # how often the purge asks whether the day's purge is due
REMINDER_EVERY_S = 60.0


@dataclass
class Job:
    name: str
    every_s: float
    run: Callable[[Runtime], Awaitable[None]]
    first_s: float | None = None  # the first turn this long after start (None: every_s)


class Periodic:
    """The thread running ``jobs`` on one loop with one Runtime, until :meth:`stop`."""

    def __init__(self, settings: Settings, jobs: list[Job]) -> None:
        self.settings, self.jobs = settings, jobs
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()),
                                        name="omitama-periodic", daemon=True)

    def start(self) -> "Periodic":
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._thread.join(timeout_s)

    async def _main(self) -> None:
        rt = Runtime.create(self.settings)  # on this thread's loop, for as long as it runs
        try:
            await asyncio.gather(*(self._turns(rt, j) for j in self.jobs))
        finally:
            await rt.close()

    async def _turns(self, rt: Runtime, job: Job) -> None:
        next_at = time.monotonic() + (job.every_s if job.first_s is None else job.first_s)
        while not self._stopping.is_set():
            if time.monotonic() < next_at:
                await asyncio.sleep(min(0.5, next_at - time.monotonic()))
                continue
            try:
                await job.run(rt)
            except Exception:  # noqa: BLE001 - the next turn tries again (and catches up)
                log.exception("%s: failed; the next turn tries again", job.name)
            next_at = time.monotonic() + job.every_s


def purge_job(who: str | None = None) -> Job:
    """The daily purge (``[retention] purge_hour`` reached in Tokyo), once a day across
    all processes. A purge cut short (a stop, Redis gone) is finished by the next day's:
    every step is idempotent, and all that was overdue is still overdue."""
    by = who or f"{socket.gethostname()}:{os.getpid()}"
    last: list[date | None] = [None]  # the day this process saw settled (by itself or another)

    async def run(rt: Runtime) -> None:
        now = now_tokyo()
        if purge_due(last[0], now, rt.settings.retention.purge_hour):
            await daily_purge(rt.store, rt.settings, by, now=now)
            last[0] = now.date()
    # the first look at start: a worker started after purge_hour purges now, not in 5 min
    return Job("purge", PURGE_CHECK_S, run, first_s=0)


def reminder_job() -> Job:
    """A pass of pickup reminders (worker/app/reminders.py)."""
    async def run(rt: Runtime) -> None:
        done = await run_pass(rt, now_tokyo())
        if done["mails"]:
            log.info("reminders: %d mails for %d holds", done["mails"], done["holds"])
    return Job("reminders", REMINDER_EVERY_S, run)


def start(settings: Settings) -> Periodic:
    """In a worker process after boot: the purge, and reminders when enabled."""
    jobs = [purge_job()]
    if settings.reminder.enabled:
        jobs.append(reminder_job())
    return Periodic(settings, jobs).start()
