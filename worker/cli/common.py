"""What the commands that use the store share."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, TypeVar

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
