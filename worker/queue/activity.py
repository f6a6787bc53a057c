"""One INFO line a minute of what a worker process did with hold notices.

The routine "notice sent" line is DEBUG (README, "Performance"); an operator
reading the log at INFO still sees the worker working: ``notices in the last 60 s:
sent 2911, phoned 58, duplicate 3``. Quiet minutes print nothing.

So that a newcomer who sends one notice sees it at once, the *first* notice sent in
each interval gets its own INFO line (``hold H-1: notice sent; …``); the others of
that interval are only counted. A line per notice cost ~1/6 of the worker's CPU
(dramatiq relays every worker line through its main process); one per process per
minute costs nothing measurable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any, Iterable

from ..holds.outcome import Outcome
from .metrics import count_notice

log = logging.getLogger(__name__)

_counts: Counter[str] = Counter()
_lock = threading.Lock()
_interval_s = 0.0


def tally(outcome: str, hold_id: str | None = None) -> None:
    """One hold's outcome: counted for Prometheus (``omitama_notices_total``) and for the
    summary line."""
    count_notice(outcome)
    note(outcome, hold_id)


def tally_all(results: Iterable[tuple[str, Any]]) -> None:
    """:func:`tally` each ``(hold_id, result)`` (a digest's other holds: worker/app/hold_mail.py
    ``Followup.results``)."""
    for hold_id, result in results:
        tally(result.outcome.value, hold_id)


def note(outcome: str, hold_id: str | None = None) -> None:
    with _lock:
        _counts[outcome] += 1
        first = _counts[outcome] == 1
    if first and outcome in _FIRST_SAYS:
        more = (f"the next ones in these {_interval_s:g} s are counted in the summary line"
                if _interval_s > 0 else "the next ones are logged at DEBUG only")
        log.info("hold %s: %s; %s", hold_id or "?", _FIRST_SAYS[outcome], more)


# the outcomes whose first of an interval gets a line of its own, and what it says
_FIRST_SAYS: dict[str, str] = {
    Outcome.SENT: "notice sent",
    # so that a newcomer trying the digest sees why nothing is mailed yet
    Outcome.GATHERING: "gathered for a digest: waits [digest] gather_s for the card's other "
                       "holds at its branch, then all go out as one mail",
}


def take() -> dict[str, int]:
    """The counts since the last take, and start again from zero."""
    with _lock:
        counts = dict(_counts)
        _counts.clear()
    return counts


def summary(counts: dict[str, int], interval_s: float) -> str:
    order: list[str] = list(Outcome)  # in the enum's order; anything else after, by name
    parts = sorted(counts.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order
                                                   else len(order), kv[0]))
    return f"notices in the last {interval_s:g} s: " + ", ".join(f"{k} {n}" for k, n in parts)


def start(interval_s: float) -> None:
    """A daemon thread logging the summary every ``interval_s`` (0: none); it ends with
    the worker process."""
    global _interval_s
    _interval_s = interval_s
    if interval_s <= 0:
        return

    def run() -> None:
        while True:
            time.sleep(interval_s)
            counts = take()
            if counts:
                log.info("%s", summary(counts, interval_s))
    threading.Thread(target=run, name="omitama-activity", daemon=True).start()
