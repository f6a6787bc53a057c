"""What one process needs to handle events: settings, store, composer, transport.

Built once per process, on the event loop that will use it (redis.asyncio and
aiosmtplib connections belong to one loop): dramatiq's AsyncIO thread in the
worker, ``asyncio.run`` in the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .mail.compose import Composer
from .settings import Settings, get_settings
from .store.core import Store
from .mail.transport import Transport, make_transport


@dataclass
class Runtime:
    settings: Settings
    store: Store
    composer: Composer
    transport: Transport

    @classmethod
    def create(cls, settings: Settings) -> "Runtime":
        return cls(settings, Store.from_settings(settings),
                   Composer(settings), make_transport(settings))

    @cached_property
    def branches(self) -> frozenset[str]:
        return frozenset(self.settings.branches)

    async def close(self) -> None:
        await self.transport.close()
        await self.store.close()


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The worker process's runtime (created on first use, on the calling loop)."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime.create(get_settings())
    return _runtime


def reset_runtime() -> None:
    global _runtime
    _runtime = None
