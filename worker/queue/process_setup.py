"""What every worker process sets up at boot: masked (optionally JSON) logs, metrics."""

from __future__ import annotations

import logging
import os
from typing import Any

from dramatiq.middleware import Middleware

from . import activity, loop, metrics, periodic, sweeper
from .. import logs
from ..settings import Settings


def metrics_env(settings: Settings) -> None:
    """dramatiq's Prometheus module reads its address from the environment when imported
    — in the worker processes *and* in dramatiq's main process, which forks the
    exposition server without importing our module: `omitama-notify worker` calls this
    before starting dramatiq so every process sees it."""
    # the settings decide the address (an inherited variable must not move the endpoint)
    os.environ["dramatiq_prom_host"] = settings.metrics.host
    os.environ["dramatiq_prom_port"] = str(settings.metrics.port)
    os.environ.setdefault("dramatiq_prom_db", str(settings.var_dir / "prometheus"))


def wipe_metrics_dir() -> None:
    """prometheus_client's multiprocess files of an earlier run would count forever."""
    folder = os.environ.get("dramatiq_prom_db")
    if folder and os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.endswith(".db"):
                os.remove(os.path.join(folder, name))


def prometheus_middleware(settings: Settings) -> Middleware | None:
    """dramatiq's Prometheus middleware on ``[metrics] host:port`` (None when port = 0)."""
    if not settings.metrics.port:
        return None
    metrics_env(settings)
    from dramatiq.middleware.prometheus import Prometheus

    return Prometheus()


class ProcessSetup(Middleware):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def after_process_boot(self, broker: Any) -> None:
        s = self.settings
        logs.configure(s.logging.format, s.logging.level)
        # before dramatiq's AsyncIO middleware builds its loop (at worker boot)
        logging.getLogger(__name__).debug("event loop: %s", loop.install())
        activity.start(s.logging.summary_interval_s)
        if s.metrics.port:
            metrics.start(s.redis, s.redis.key_prefix, list(s.branches))
        # (process_boot is a worker-CLI event: in-process test workers get no sweeper thread)
        actor = broker.get_actor("hold_ready")
        sweeper.start(s.redis, s.redis.key_prefix, actor.send,
                      namespace=s.redis.namespace, queue=actor.queue_name,
                      lease_s=s.delivery.lease_s, interval_s=s.delivery.sweep_interval_s)
        periodic.start(s)  # the daily purge; pickup reminders
