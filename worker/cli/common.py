"""What the commands that use the store share."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from typing import Awaitable, Callable, TypeVar

from ..jdate import TOKYO
from ..settings import Settings
from ..store.core import Store

T = TypeVar("T")


def with_store(settings: Settings, fn: Callable[[Store], Awaitable[T]]) -> T:
    """``await fn(store)`` on a store connected from ``[redis]`` (checked first, so an
    unreachable Redis is one clear StoreError), closed afterwards; from synchronous code.
    The private Redis, where settings allow one, is started by ``main`` around the command."""
    async def run() -> T:
        store = Store.from_settings(settings)
        try:
            await store.ping()
            return await fn(store)
        finally:
            await store.close()
    return asyncio.run(run())


def moment(text: str) -> datetime:
    """An ISO 8601 date-time given on the command line (no offset: Tokyo time)."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO date-time: {text!r} (e.g. 2026-12-04T10:00:00+09:00)") from None
    return at if at.tzinfo else at.replace(tzinfo=TOKYO)
