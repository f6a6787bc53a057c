"""Structured logs that never carry a full e-mail address, a patron's name or a code.

By construction the code logs masked addresses (``t***@docomo.ne.jp``), card
numbers and hold ids only. :class:`MaskFilter` is the second lock: any address
that still slips into a message (an exception text quoting a relay's reply, say)
is masked before the record is written, by every handler.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone

from .masking import mask_address

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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "pid": record.process,
            "msg": record.getMessage()}, ensure_ascii=False)


def configure(fmt: str = "text", level: str = "INFO") -> None:
    """Put the mask on every handler of the root logger (and JSON, if asked)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level)
    root.setLevel(level)
    # dramatiq's DEBUG lines print whole messages — the event with the patron's name and
    # address, which no mask can recognise — so its loggers, and the actors' loggers it
    # names after our module ("Received args=…"), stay at INFO or above
    quiet = max(logging.INFO, logging.getLevelName(level))
    for name in ("dramatiq", "worker.actors"):
        logging.getLogger(name).setLevel(quiet)
    for handler in root.handlers:
        if not any(isinstance(f, MaskFilter) for f in handler.filters):
            handler.addFilter(MaskFilter())
        if fmt == "json":
            handler.setFormatter(JsonFormatter())
