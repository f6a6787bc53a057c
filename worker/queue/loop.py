"""The event loop every process runs on: uvloop where it is installed.

uvloop (libuv under asyncio's API) cuts the loop's own CPU per socket round trip;
a notice costs several (Redis claim, SMTP, Redis record), and the worker is
CPU-bound on a small machine (README, "Performance"). Where uvloop is missing
(Windows, or a build without it) asyncio's own loop does the same job, slower.
The one-shot CLI commands keep asyncio's loop: they make a handful of round trips.
"""

from __future__ import annotations

import asyncio

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
    uvloop = None  # type: ignore[assignment]


def install() -> str:
    """Make asyncio.new_event_loop() build uvloop loops in this process (dramatiq's
    AsyncIO middleware builds its loop that way). Returns the loop's name, for the log."""
    if uvloop is None:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
