"""What every part of the store shares: the one client, the key names, and the helpers for
what the records write (times, JSON).

:class:`Conn` is the base of :class:`worker.store.core.Store`; the sub-stores (contacts,
bounces, digest windows, reminders, retention, a patron's data, staff accounts) are built
once, by the store, on the same :class:`Conn` and are its attributes — so they import
this module, never the store they belong to.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis

from ..jdate import TOKYO
from .keys import Keys
from .outcomes import DEFAULT_MAXLEN, outcome_args


def now_ms() -> int:
    return int(time.time() * 1000)


_last_us = 0


def arrival_us() -> int:
    """Microseconds now, strictly increasing within the process: an order key for things
    listed in the order they came (several can come within one millisecond)."""
    global _last_us
    _last_us = max(time.time_ns() // 1000, _last_us + 1)
    return _last_us


def now_iso() -> str:
    """Timestamps people read (audit, failures, refusals): ISO 8601 in Tokyo time."""
    return datetime.now(TOKYO).isoformat(timespec="seconds")


def safe_url(url: str) -> str:
    """The Redis URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


class Conn:
    """One Redis client and the key names, with what the scripts that append outcomes
    need (``[outcomes] maxlen``) and how many replicas confirm a staff action
    (``[staff_writes]``)."""

    def __init__(self, client: aioredis.Redis, keys: Keys, url: str = "",
                 outcomes_maxlen: int = DEFAULT_MAXLEN, *, staff_replicas: int = 0,
                 staff_timeout_ms: int = 500) -> None:
        self.r = client
        self.k = keys
        self.url = url
        self.outcomes_maxlen = outcomes_maxlen
        self.staff_replicas = staff_replicas
        self.staff_timeout_ms = staff_timeout_ms

    def outcome_args(self) -> list[str | int]:
        """Appended to the ARGV of a script wrapped by
        :func:`worker.store.outcomes.with_outcomes` (its KEYS get ``self.k.outcomes``)."""
        return outcome_args(self.outcomes_maxlen, now_iso())
