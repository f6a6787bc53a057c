"""Structured logs that never carry a full e-mail address, a patron's name or a code.

By construction the code logs masked addresses (``t***@docomo.ne.jp``), card
numbers and hold ids only. :class:`MaskFilter` is the second lock: any address
that still slips into a message (an exception text quoting a relay's reply, say)
is masked before the record is written, by every handler.

Every line carries Tokyo time with its offset (``2026-11-29T21:30:00.123+09:00``),
as the CLI's output does, whatever zone the machine is set to: dramatiq's own text
lines too (:func:`use_tokyo_time`, called in dramatiq's main process by
``worker/queue/dramatiq_cli.py`` and inherited by the worker processes).
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime

from .jdate import TOKYO
from .masking import mask_address

# Asia/Tokyo has kept +09:00 all year since 1951: one offset serves every timestamp
_OFFSET = datetime.now(TOKYO).utcoffset()
_OFFSET_S = int(_OFFSET.total_seconds()) if _OFFSET else 9 * 3600
_OFFSET_TEXT = "{}{:02d}:{:02d}".format("+" if _OFFSET_S >= 0 else "-", abs(_OFFSET_S) // 3600,
                                        abs(_OFFSET_S) % 3600 // 60)

_ADDRESS = re.compile(r'(?:"[^"\s@]{1,64}"|[A-Za-z0-9!#$%&\'*+/=?^_`{|}~.-]{1,64})@'
                      r"[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")


def _mask(m: re.Match[str]) -> str:
    found = m.group(0)
    # our own Message-IDs (<hold.TOKEN@…>, <reg.TOKEN@…>) look like addresses but name
    # no one, and operators need them to trace a notice
    if found.startswith(("hold.", "reg.")):
        return found
    return mask_address(found)


def mask_text(text: str) -> str:
    # every address has an "@": most lines (a notice sent, a hold phoned) have none left
    return _ADDRESS.sub(_mask, text) if "@" in text else text


class MaskFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = mask_text(message)
        if record.exc_info and record.exc_info[1] is not None:
            masked += "\n" + mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        record.msg, record.args = masked, None
        return True


def _tokyo_struct(seconds: float | None = None) -> time.struct_time:
    return time.gmtime((time.time() if seconds is None else seconds) + _OFFSET_S)


def use_tokyo_time() -> None:
    """Every logging.Formatter of this process (and of processes it forks) writes
    %(asctime)s as 2026-11-29T21:30:00.123+09:00."""
    logging.Formatter.converter = staticmethod(_tokyo_struct)  # type: ignore[assignment]
    logging.Formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
    logging.Formatter.default_msec_format = "%s.%03d" + _OFFSET_TEXT


# dramatiq's line format (dramatiq.cli.LOGFORMAT): the worker's lines look like this, and
# so do those of the other long-running commands (``bounces watch``, ``staff-web``)
WORKER_FORMAT = ("[%(asctime)s] [PID %(process)d] [%(threadName)s] [%(name)s] "
                 "[%(levelname)s] %(message)s")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({
            "ts": self.formatTime(record),
            "level": record.levelname, "logger": record.name, "pid": record.process,
            "msg": record.getMessage()}, ensure_ascii=False)


def configure(fmt: str = "text", level: str = "INFO") -> None:
    """Put the mask on every handler of the root logger (and JSON, if asked)."""
    use_tokyo_time()  # already so when forked from worker/queue/dramatiq_cli.py; not when spawned
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level)
    root.setLevel(level)
    # dramatiq's DEBUG lines print whole messages — the event with the patron's name and
    # address, which no mask can recognise — so its loggers, and the actors' loggers it
    # names after our module ("Received args=…"), stay at INFO or above
    quiet = max(logging.INFO, logging.getLevelName(level))
    for name in ("dramatiq", "worker.queue.actors"):
        logging.getLogger(name).setLevel(quiet)
    for handler in root.handlers:
        if not any(isinstance(f, MaskFilter) for f in handler.filters):
            handler.addFilter(MaskFilter())
        if fmt == "json":
            handler.setFormatter(JsonFormatter())


def long_running(fmt: str = "text", level: str = "INFO") -> None:
    """A command that runs for days (``bounces watch``, ``staff-web``) logs like the
    worker: ``[logging] level`` (INFO by default) in the worker's line format, Tokyo time,
    masked — not the one-shot commands' "omitama-notify: …" at ERROR, which would hide
    "IMAP unreachable" or "Redis down" for the life of the process."""
    use_tokyo_time()
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(logging.Formatter(WORKER_FORMAT))
        handler.setLevel(logging.NOTSET)
    configure(fmt, level)
