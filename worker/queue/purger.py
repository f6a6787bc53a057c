"""The daily purge inside the worker: a thread in each worker process.

Every ``CHECK_S``, the first time ``CHECK_S`` after the process started, it asks whether
the day's purge is due (``[retention] purge_hour``
reached in Tokyo); the first process of any worker host to take the day's marker in
Redis (SET NX, worker/store/retention.py) runs it, the others skip. A purge cut short (a
stop, Redis gone) is finished by the next day's: every step is idempotent, and all that
was overdue is still overdue.

Not at boot: a worker starts when the queue is longest (after a deploy, an outage), and
the purge walks every patron's audit list (one round trip each) — on 3,000 patrons it
took ~8 % of a worker process's CPU while it drained the queue. A few minutes later is
the same day's purge.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from datetime import date

from ..app.retention import daily_purge
from ..holds.retention import purge_due
from ..jdate import now_tokyo
from ..settings import Settings
from ..store.core import Store

log = logging.getLogger(__name__)
CHECK_S = 300.0


async def _once(s: Settings, who: str) -> bool:
    store = Store.from_settings(s)
    try:
        return await daily_purge(store, s, who) is not None
    finally:
        await store.close()


def run_if_due(s: Settings, last_day: date | None) -> date | None:
    """One look: the day this process saw settled (by itself or another), else ``last_day``."""
    now = now_tokyo()
    if not purge_due(last_day, now, s.retention.purge_hour):
        return last_day
    asyncio.run(_once(s, f"{socket.gethostname()}:{os.getpid()}"))
    return now.date()


def start(s: Settings, check_s: float = CHECK_S) -> None:
    def loop() -> None:
        last: date | None = None
        while True:
            time.sleep(check_s)
            try:
                last = run_if_due(s, last)
            except Exception as e:  # noqa: BLE001 - tomorrow's purge catches up
                log.warning("purge: failed (%s); the next one catches up", type(e).__name__)

    threading.Thread(target=loop, name="omitama-purge", daemon=True).start()
