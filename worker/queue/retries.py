"""Retries that wait for Redis: dramatiq's Retries middleware, patient and quieter."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import dramatiq
from dramatiq.middleware import Retries

from ..store.client import REDIS_UNREACHABLE


def _retry_line_at_debug(record: logging.LogRecord) -> bool:
    """dramatiq's "Retrying message 'ID' in 4998 milliseconds." at DEBUG, not INFO: every
    hold waiting in a digest window is such a retry, and an operator read a failure into
    a digest going as planned. Our own lines say why a hold waits (a relay failure at
    WARNING with its delay; the first hold gathered of each interval at INFO)."""
    if isinstance(record.msg, str) and record.msg.startswith("Retrying message"):
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
    return True


class PatientRetries(Retries):
    """dramatiq's Retries, but a retry that cannot be scheduled because Redis is away
    is tried again until Redis answers. Plain Retries logs the failure and lets the
    worker acknowledge the message once Redis is back: the message — and with it a
    hold never claimed — would be gone without a trace."""

    PATIENCE_S = 120.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.logger.addFilter(_retry_line_at_debug)

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        if isinstance(exception, dramatiq.Retry) and exception.delay is not None:
            # A planned retry (a hold waiting in its digest window, busy with another
            # worker, a relay's 4xx — each counted or logged where it is decided): as
            # dramatiq's own, without the traceback it formats and the INFO line it logs
            # per message (both for an exception nobody reads; every line of a worker
            # process is relayed through dramatiq's main process).
            delay = exception.delay
            message.options["retries"] = message.options.get("retries", 0) + 1
            message.options["requeue_timestamp"] = int(time.time() * 1000)
            message.options.pop("traceback", None)
            self.logger.debug("Retrying message %r in %d milliseconds.", message.message_id,
                              delay)
            return self._patiently(lambda: broker.enqueue(message, delay=delay))
        return self._patiently(lambda: super(PatientRetries, self).after_process_message(
            broker, message, result=result, exception=exception))

    def _patiently(self, step: Callable[[], Any]) -> None:
        deadline = time.monotonic() + self.PATIENCE_S
        while True:
            try:
                step()
                return
            except REDIS_UNREACHABLE:
                if time.monotonic() > deadline:
                    raise  # not acknowledged either: the sweeper finds it in the ack set
                time.sleep(1.0)
