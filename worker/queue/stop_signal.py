"""One stop per worker process, however many SIGTERMs reach it (a dramatiq middleware)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)


class OneStopSignal(Middleware):
    """A worker process stops once, however many SIGTERMs reach it.

    systemd (and ``kill -- -PGID``) signals every process of the worker, and dramatiq's
    main process forwards the signal too: each worker process gets two at once. dramatiq
    takes the second for "kill now" and calls ``sys.exit``, which then waits for ever for
    the AsyncIO event-loop thread (not a daemon) — the worker hung until SIGKILL. Here a
    repeat within ``REPEAT_S`` is the same stop (dramatiq finishes what it is running and
    puts back what it prefetched); a later one still means "exit now" (what was fetched
    and not acknowledged is re-queued by the sweeper or dramatiq's maintenance)."""

    REPEAT_S = 5.0

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        stop = signal.getsignal(signal.SIGTERM)
        if not callable(stop):
            return
        first: list[float] = []

        def on_term(signum: int, frame: Any) -> None:
            if not first:
                first.append(time.monotonic())
                stop(signum, frame)
            elif time.monotonic() - first[0] >= self.REPEAT_S:
                log.warning("second stop signal: exiting now")
                os._exit(3)  # dramatiq's RET_KILLED

        signal.signal(signal.SIGTERM, on_term)
