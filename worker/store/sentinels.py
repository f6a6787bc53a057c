"""redis-py's Sentinel support, with the two things it lacks for us (sync and asyncio).

* A connection that lost its socket reconnects to the primary the Sentinels name *now*:
  redis-py asks them only in ``connect()``, and a command retried after a lost connection
  reconnects through ``send_packed_command`` to the address it had — the dead primary
  (redis/redis-py#3874, open): no retry ever reached the new one.
* A Lua script called after a failover loads itself on each node it meets, not only once.
* "No primary" says which Sentinel answered what in one short line, not the repr of
  every client (what an operator reads in ``check`` and in the logs).
"""

from __future__ import annotations

import os
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection as AsyncSSLConnection
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelManagedConnection
from redis.connection import SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.commands.core import AsyncScript, Script
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection

__all__ = ["FollowingConnection", "FollowingSSLConnection", "AsyncFollowingConnection",
           "AsyncFollowingSSLConnection", "FollowingRedis", "AsyncFollowingRedis", "Sentinels",
           "AsyncSentinels", "MasterNotFoundError", "no_primary", "usable_primary"]

SENTINEL_ERRORS = (RedisConnectionError, ResponseError, RedisTimeoutError, OSError)


def demoted(e: ResponseError) -> bool:
    """A Lua script's write refused by a primary demoted to replica. Redis 7 replies
    READONLY (redis-py's ReadOnlyError, which its Sentinel connection already takes for a
    demotion); Redis 6.2 wraps it: "Error running script … -READONLY You can't write"."""
    return "-READONLY " in str(e)


DEMOTED = "the primary was demoted to replica (a failover): asking the Sentinels again"


class FollowingConnection(SentinelManagedConnection):
    """redis-py's Sentinel connection, asking the Sentinels again at every reconnect, and
    taking Redis 6.2's wrapped READONLY for a demotion too."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect()  # SentinelManagedConnection.connect: asks the Sentinels
        super().send_packed_command(command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except ResponseError as e:
            if self.connection_pool.is_master and demoted(e):
                self.disconnect()
                raise RedisConnectionError(DEMOTED) from None
            raise


class FollowingSSLConnection(FollowingConnection, SSLConnection):
    pass


class AsyncFollowingConnection(AsyncSentinelManagedConnection):
    """:class:`FollowingConnection` for redis.asyncio clients."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect()
        await super().send_packed_command(command, check_health)

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except ResponseError as e:
            if self.connection_pool.is_master and demoted(e):
                await self.disconnect()
                raise RedisConnectionError(DEMOTED) from None
            raise


class AsyncFollowingSSLConnection(AsyncFollowingConnection, AsyncSSLConnection):
    pass


# a script call meets NOSCRIPT once per node it reaches (redis-py loads it and calls again);
# across a failover the call after the load may reach yet another node
NOSCRIPT_TRIES = 3


class PatientScript(Script):
    """A Lua script that loads itself again as often as a failover moves it."""

    def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        for _ in range(NOSCRIPT_TRIES - 1):
            try:
                return super().__call__(keys, args, client)
            except NoScriptError:
                continue
        return super().__call__(keys, args, client)


class AsyncPatientScript(AsyncScript):
    """:class:`PatientScript` for redis.asyncio clients."""

    async def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        for _ in range(NOSCRIPT_TRIES - 1):
            try:
                return await super().__call__(keys, args, client)
            except NoScriptError:
                continue
        return await super().__call__(keys, args, client)


class FollowingRedis(redis.Redis):
    """The client of a Sentinel-named primary: its scripts are :class:`PatientScript`."""

    def register_script(self, script: Any) -> PatientScript:  # type: ignore[override]
        return PatientScript(self, script)


class AsyncFollowingRedis(aioredis.Redis):
    def register_script(self, script: Any) -> AsyncPatientScript:  # type: ignore[override]
        return AsyncPatientScript(self, script)


def addr(client: Any) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"{kw.get('host')}:{kw.get('port')}"


def short(e: Exception) -> str:
    """An error's text without redis-py's "Error 111 connecting to HOST:PORT." before
    the reason (the address is said beside it)."""
    cause = e.__cause__
    if isinstance(cause, OSError) and cause.errno:
        return os.strerror(cause.errno)  # "Connection refused", sync and asyncio alike
    text = str(e) or type(e).__name__
    if text.startswith("Error ") and ". " in text:
        text = text.split(". ", 1)[1]
    return text.rstrip(".")


def no_primary(name: str, said: list[str]) -> MasterNotFoundError:
    """What to raise when no Sentinel named a usable primary: each one's answer (the
    clients' error and ``check``'s line, worker/store/sentinel_view.py)."""
    return MasterNotFoundError(f"no Sentinel names a primary for {name!r} ({'; '.join(said)})")


def usable_primary(sentinels: Sentinel | AsyncSentinel, state: dict[str, Any] | None
                   ) -> tuple[str, int] | str:
    """The primary's address when ``state`` (a Sentinel's entry for the name, from SENTINEL
    MASTERS or SENTINEL MASTER) names a usable one, else why not — the one test the
    clients and ``check`` make."""
    if not state:
        return "monitors no primary by that name"
    if sentinels.check_master_state(state, ""):
        return str(state["ip"]), int(state["port"])
    return "sees the primary down" if state["is_sdown"] or state["is_odown"] else \
        "names no usable primary"


def _named(masters: Any, name: str) -> dict[str, Any] | None:
    """SENTINEL MASTERS' entry for ``name`` (redis-py parses the reply into a dict)."""
    state = masters.get(name) if isinstance(masters, dict) else None
    return state if isinstance(state, dict) else None


class Sentinels(Sentinel):
    """redis-py's Sentinel manager with :func:`no_primary`'s message."""

    def discover_master(self, service_name: str) -> tuple[str, int]:
        said = []
        for i, s in enumerate(self.sentinels):
            try:
                state = _named(s.sentinel_masters(), service_name)
            except SENTINEL_ERRORS as e:
                said.append(f"{addr(s)}: {short(e)}")
                continue
            found = usable_primary(self, state)
            if isinstance(found, tuple):
                self.sentinels[0], self.sentinels[i] = s, self.sentinels[0]  # ask it first
                return found
            said.append(f"{addr(s)} {found}")
        raise no_primary(service_name, said)


class AsyncSentinels(AsyncSentinel):
    """:class:`Sentinels` for redis.asyncio clients."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        said = []
        for i, s in enumerate(self.sentinels):
            try:
                state = _named(await s.sentinel_masters(), service_name)
            except SENTINEL_ERRORS as e:
                said.append(f"{addr(s)}: {short(e)}")
                continue
            found = usable_primary(self, state)
            if isinstance(found, tuple):
                self.sentinels[0], self.sentinels[i] = s, self.sentinels[0]
                return found
            said.append(f"{addr(s)} {found}")
        raise no_primary(service_name, said)
