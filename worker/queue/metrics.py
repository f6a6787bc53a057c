"""Prometheus metrics: dramatiq's own middleware plus ours, on ``[metrics] host:port``.

dramatiq's ``Prometheus`` middleware runs the exposition server (a forked process)
and sets up prometheus_client's multiprocess mode; our metrics live in the same
multiprocess directory, so one scrape sees every worker process:

* ``omitama_notices_total{outcome}`` — hold notices by outcome (sent, phoned, retry, …);
* ``omitama_call_list{branch}``, ``omitama_pending_approvals``,
  ``omitama_suspended_addresses``, ``omitama_bounces{reason}`` — read from Redis every
  ``REFRESH_S`` seconds by each worker process (worker/store/gauges.py) (the most recent reading wins), so they are
  right whoever changed the state: a worker, a staff command or ``bounces ingest``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ..settings import RedisSettings
from ..store.client import RedisError
from ..store.gauges import connect, read_gauges
from ..store.keys import Keys

log = logging.getLogger(__name__)
REFRESH_S = 15.0

_notices: Any = None
_children: dict[str, Any] = {}  # outcome → its labelled counter (labels() costs ~7 µs a call)


def count_notice(outcome: str) -> None:
    """Count one hold_ready outcome (a no-op outside a metrics-enabled worker)."""
    if _notices is not None:
        child = _children.get(outcome)
        if child is None:
            child = _children[outcome] = _notices.labels(outcome=outcome)
        child.inc()


def start(where: RedisSettings, prefix: str, branches: list[str]) -> None:
    """In a worker process after boot: create our metrics and the refresher thread."""
    global _notices
    keys = Keys(prefix)
    # dramatiq runs after_* hooks in reverse order, so its Prometheus middleware may not
    # have set the multiprocess directory yet; it must be set before the first import.
    from dramatiq.middleware.prometheus import DB_PATH

    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", DB_PATH)
    import prometheus_client as prom

    _notices = prom.Counter("omitama_notices_total", "Hold notices by outcome.", ["outcome"])
    _children.clear()
    call_list = prom.Gauge("omitama_call_list", "Holds on the phone-call list, by pickup branch.",
                           ["branch"], multiprocess_mode="livemostrecent")
    pending = prom.Gauge("omitama_pending_approvals", "Registrations awaiting the patron's call.",
                         multiprocess_mode="livemostrecent")
    suspended = prom.Gauge("omitama_suspended_addresses", "Patrons whose address is suspended.",
                           multiprocess_mode="livemostrecent")
    bounces = prom.Gauge("omitama_bounces", "Failures recorded, by reason (since the start).",
                         ["reason"], multiprocess_mode="livemostrecent")
    client = connect(where)
    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(0 if not refresh.started else REFRESH_S):  # type: ignore[attr-defined]
            refresh.started = True  # type: ignore[attr-defined]
            try:
                g = read_gauges(client, keys, branches)
            except RedisError as e:
                log.warning("metrics: cannot read Redis: %s", e)
                continue
            for branch, n in g["calls"].items():
                call_list.labels(branch=branch).set(n)
            pending.set(g["pending"])
            suspended.set(g["suspended"])
            for reason, n in g["bounces"].items():
                bounces.labels(reason=reason).set(n)

    refresh.started = False  # type: ignore[attr-defined]
    threading.Thread(target=refresh, name="omitama-metrics", daemon=True).start()
