"""One INFO line a minute of what a worker process did with hold notices.

The routine "notice sent" line is DEBUG (README, "Performance"); an operator
reading the log at INFO still sees the worker working: ``notices in the last 60 s:
sent 2911, phoned 58, duplicate 3``. Quiet minutes print nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

log = logging.getLogger(__name__)

_counts: Counter[str] = Counter()
_lock = threading.Lock()


def note(outcome: str) -> None:
    with _lock:
        _counts[outcome] += 1


def take() -> dict[str, int]:
    """The counts since the last take, and start again from zero."""
    with _lock:
        counts = dict(_counts)
        _counts.clear()
    return counts


def summary(counts: dict[str, int], interval_s: float) -> str:
    order = ["sent", "phoned", "retry", "busy", "duplicate", "closed"]
    parts = sorted(counts.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order
                                                   else len(order), kv[0]))
    return f"notices in the last {interval_s:g} s: " + ", ".join(f"{k} {n}" for k, n in parts)


def start(interval_s: float) -> None:
    """A daemon thread logging the summary every ``interval_s`` (0: none); it ends with
    the worker process."""
    if interval_s <= 0:
        return

    def run() -> None:
        while True:
            time.sleep(interval_s)
            counts = take()
            if counts:
                log.info("%s", summary(counts, interval_s))
    threading.Thread(target=run, name="omitama-activity", daemon=True).start()
