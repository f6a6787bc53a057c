"""The digest windows' poller: in each worker process, on dramatiq's event loop (the one
the actors share, with their Runtime: store and relay pool), it looks for windows whose
end has come (``gather_due``, worker/store/digest.py) and sends them
(worker/app/digest.py ``send_due``).

Why a poll and not a message per window: a window's message went through dramatiq's
delay queue — enqueued, fetched, re-enqueued at its time, fetched again — which cost a
digest more CPU per hold than a single notice (issue 22). The entry in ``gather_due`` is
written by the join that opens the window, in the same script, and removed by its take:
durable in Redis, whichever process polls first sends it, and a process that dies after
finding a window leaves it to the others once its claim on it (a lease) is over.

A middleware, so that every dramatiq worker on the project's broker gets it — the
``omitama-notify worker`` processes and a test's in-process worker alike. The poll is one
script call every ``POLL_S`` per process when nothing is due, or sooner when the poll
said a window ends sooner: a window goes out at its end. Up to ``most`` windows are sent at once, and the poller tops up as sends end
(not batch by batch: a batch waited for its slowest mail, and the window sends after a
busy window's end ran at a third of what the CPU allows).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from typing import Any

from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from . import activity
from ..app.digest import due_windows, send_due
from ..runtime import Runtime, get_runtime
from ..store.client import REDIS_UNREACHABLE
from ..store.digest import DueWindow

log = logging.getLogger(__name__)

POLL_S = 0.5            # the longest nap between polls: a window opened by another process
                        # ending sooner than the one this process knows of waits at most this
ERROR_PAUSE_S = 5.0     # after a failed poll (Redis out of reach): wait, log once a minute
STOP_WAIT_S = 30.0      # at shutdown, how long the windows being sent may take


class DueWindows(Middleware):
    """Starts the poller on dramatiq's event loop when a worker boots and stops it (after
    the windows in hand are sent) before the worker shuts down. ``most``: windows sent
    at once, as many as the worker's threads handle messages."""

    def __init__(self, most: int) -> None:
        self.most = max(1, most)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: concurrent.futures.Future[None] | None = None

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        thread = get_event_loop_thread()
        if thread is None:  # no AsyncIO middleware: nothing to run on
            log.error("digest windows: no event loop; windows go out only by the sweeper")
            return
        self._loop = thread.loop
        self._stop = asyncio.Event()  # bound to the loop at its first use, there
        self._task = asyncio.run_coroutine_threadsafe(self._run(self._stop), self._loop)

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        if self._task is None or self._loop is None:
            return
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        try:
            self._task.result(timeout=STOP_WAIT_S)
        except Exception:  # noqa: BLE001 - cut short: the sweeper brings its holds back
            log.warning("digest windows: poller stopped before its sends were over")
        self._task = None

    async def _run(self, stop: asyncio.Event) -> None:
        rt = get_runtime()
        running: set[asyncio.Task[None]] = set()
        logged = 0.0
        while not stop.is_set():
            free = self.most - len(running)
            found, nap = 0, POLL_S
            # top up when half the places are free (a poll is a round trip: not one per
            # window), or when nothing is being sent
            if free >= max(1, self.most // 2) or not running:
                try:
                    windows, next_ms = await due_windows(rt, free)
                except Exception as e:  # noqa: BLE001 - Redis out of reach, a bug: poll again
                    if time.monotonic() - logged > 60:
                        logged = time.monotonic()
                        log.error("digest windows: poll failed (%s); trying again every %g s",
                                  type(e).__name__, ERROR_PAUSE_S,
                                  exc_info=not isinstance(e, REDIS_UNREACHABLE))
                    await _settle(stop, running, ERROR_PAUSE_S)
                    continue
                for w in windows:
                    task = asyncio.create_task(_send(rt, w))
                    running.add(task)
                    task.add_done_callback(running.discard)
                found = len(windows)
                if next_ms is not None:  # wake at the next window's end, not up to POLL_S late
                    nap = min(POLL_S, max(0.0, next_ms / 1000 - time.time()) + 0.002)
            if found and found == free:
                await _settle(stop, running, None)  # more may be due: on when a place frees
            else:
                await _settle(stop, running, nap)
        if running:  # stopping: finish what is in hand
            await asyncio.wait(running)


async def _send(rt: Runtime, w: DueWindow) -> None:
    activity.tally_all((await send_due(rt, w)).results)


async def _settle(stop: asyncio.Event, running: set[asyncio.Task[None]],
                  seconds: float | None) -> None:
    """Until a send in ``running`` ends, ``seconds`` pass (None: no limit, when something
    runs), or the poller is stopped."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({stopping, *running}, timeout=seconds,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
