"""A thread in each worker process that runs a pass of pickup reminders every minute
when ``[reminder] enabled`` (worker/app/reminders.py). Several processes may run passes
at once: a hold is taken by one of them only (remind_take.lua)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from ..settings import Settings

log = logging.getLogger(__name__)
INTERVAL_S = 60.0


def start(settings: Settings, interval_s: float = INTERVAL_S) -> None:
    if not settings.reminder.enabled:
        return

    async def one_pass() -> None:
        from ..app.reminders import run_pass
        from ..jdate import now_tokyo
        from ..runtime import Runtime

        rt = Runtime.create(settings)
        try:
            done = await run_pass(rt, now_tokyo())
            if done["mails"]:
                log.info("reminders: %d mails for %d holds", done["mails"], done["holds"])
        finally:
            await rt.close()

    def loop() -> None:
        while True:
            time.sleep(interval_s)
            try:
                asyncio.run(one_pass())
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("reminders: the pass failed; will try again")

    threading.Thread(target=loop, name="omitama-reminders", daemon=True).start()
