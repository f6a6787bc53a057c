"""The one place a Redis client is made: every process, sync or async, and dramatiq's broker.

``[redis] url`` alone: one Redis, each client as ``from_url`` made it before (redis-py's
own retry policy, nothing added). ``[redis] sentinels`` + ``master_name``: the primary is
found through Redis Sentinel (``Sentinel.master_for``) at every new connection, so a
client follows a failover by itself. ``url`` then gives only what is not an address: the
scheme (``rediss://``: TLS to the data nodes and the Sentinels), the data nodes' user,
password and db number, and its query options; its host and port are not used. The
Sentinels' own password is ``[redis] sentinel_password`` (environment only).

During a failover a command waits instead of failing: :class:`FailoverRetry` retries a
connection error, a timeout or a write refused by a demoted primary (redis-py's
``SentinelManagedConnection`` turns that READONLY into a connection error and asks the
Sentinels again) until ``[redis] failover_wait_s`` after the command began. A retried
command may have run once already when only its reply was lost; the scripts and
transactions it repeats are safe to repeat (the note in ``worker/store/scripts.py``; a
WATCH/MULTI is decided again on what Redis holds then).
"""

from __future__ import annotations

import socket
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator, NamedTuple

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ..errors import StoreError
from ..settings import RedisSettings
from .base import safe_url
from .sentinels import (AsyncFollowingConnection, AsyncFollowingRedis,
                        AsyncFollowingSSLConnection, AsyncSentinels, FollowingConnection,
                        FollowingRedis, FollowingSSLConnection, MasterNotFoundError, Sentinels)

__all__ = ["aclose", "async_client", "broker_client", "close", "describe", "not_retried",
           "sync_client", "RETRIED"]

# what a failover looks like to a client: retried (anything else is an answer)
RETRIED: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError,
                                        socket.timeout, ReadOnlyError)
# a dead host must not hold a connection attempt for the OS's TCP timeout (minutes)
CONNECT_TIMEOUT_S = 2.0
# with Sentinel, a primary silent this long (a frozen or cut-off host: no reset comes) is
# given up and the command retried on whichever the Sentinels name; a repeat is safe, and
# every command of ours takes milliseconds (dramatiq's fetch is no blocking pop) but a
# staff action's WAIT, at most [staff_writes] timeout_ms (10 s: tests/test_sentinel.py)
NODE_TIMEOUT_S = 15.0
SENTINEL_TIMEOUT_S = 2.0

# when the outermost retried call gives up (per thread / per asyncio task): redis-py nests
# a connect's retry inside a command's, and both must end at the same moment
_deadline: ContextVar[float | None] = ContextVar("omitama_redis_deadline", default=None)


def _in_time(error: Exception) -> bool:
    deadline = _deadline.get()
    return deadline is None or time.monotonic() < deadline


@contextmanager
def not_retried() -> Iterator[None]:
    """Commands in the block are not retried after a connection error: one whose answer
    is only good from the node that answered (a staff action's WAIT, worker/store/
    replicas.py: after a failover, the new primary's replicas would confirm nothing of
    what the old one took). The error reaches the caller at once."""
    token = _deadline.set(time.monotonic())  # already over: no retry is in time
    try:
        yield
    finally:
        _deadline.reset(token)


def _backoff() -> ExponentialBackoff:
    # 50 ms, 100 ms … then every second: a failover (Sentinel's down-after plus the
    # election, a few seconds) is noticed within a second of its end
    return ExponentialBackoff(cap=1.0, base=0.05)


class FailoverRetry(Retry):
    """redis-py's Retry bounded by time (``wait_s`` from the call), not by a count."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(_backoff(), 1_000_000, RETRIED, is_retryable=_in_time)
        self.wait_s = wait_s

    def call_with_retry(self, do: Callable[[], Any], fail: Callable[..., Any],
                        is_retryable: Callable[[Exception], bool] | None = None,
                        with_failure_count: bool = False) -> Any:
        token = _deadline.set(time.monotonic() + self.wait_s) if _deadline.get() is None else None
        try:
            return super().call_with_retry(do, fail, is_retryable, with_failure_count)
        finally:
            if token is not None:
                _deadline.reset(token)


class AsyncFailoverRetry(AsyncRetry):
    """:class:`FailoverRetry` for redis.asyncio clients."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(_backoff(), 1_000_000, RETRIED, is_retryable=_in_time)
        self.wait_s = wait_s

    async def call_with_retry(self, do: Callable[[], Any], fail: Callable[..., Any],
                              is_retryable: Callable[[Exception], bool] | None = None,
                              with_failure_count: bool = False) -> Any:
        token = _deadline.set(time.monotonic() + self.wait_s) if _deadline.get() is None else None
        try:
            return await super().call_with_retry(do, fail, is_retryable, with_failure_count)
        finally:
            if token is not None:
                _deadline.reset(token)


def _settings(where: RedisSettings | str) -> RedisSettings:
    return RedisSettings(url=where) if isinstance(where, str) else where


def sentinel_addrs(rs: RedisSettings) -> list[tuple[str, int]]:
    """``[redis] sentinels`` as (host, port) pairs (checked by the settings)."""
    out = []
    for entry in rs.sentinels:
        host, _, port = entry.rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


class _Conn(NamedTuple):
    """How the data nodes and the Sentinels are connected to (no address): the one place
    ``[redis] url``'s scheme and ``ssl_*`` options become TLS."""

    node: dict[str, Any]  # a data node's client keywords, TLS options included
    sentinel: dict[str, Any]  # a Sentinel's client keywords
    tls: bool  # rediss://: TLS to the data nodes and the Sentinels alike


def _conn(rs: RedisSettings) -> _Conn:
    parsed = parse_url(rs.url)
    tls = parsed.pop("connection_class", None) is SSLConnection
    parsed.pop("host", None)
    parsed.pop("port", None)
    tls_options = {k: v for k, v in parsed.items() if k.startswith("ssl")}
    node = {**parsed, "socket_connect_timeout": CONNECT_TIMEOUT_S}
    sentinel: dict[str, Any] = {**tls_options, "socket_timeout": SENTINEL_TIMEOUT_S,
                                "socket_connect_timeout": SENTINEL_TIMEOUT_S, "ssl": tls}
    password = rs.sentinel_password.get_secret_value()
    if password:
        sentinel["password"] = password
    return _Conn(node, sentinel, tls)


def sentinel(where: RedisSettings) -> Sentinels:
    """A sync Sentinel manager for ``where`` (its sentinels must be set)."""
    c = _conn(where)
    return Sentinels(sentinel_addrs(where), sentinel_kwargs=c.sentinel, **c.node)


def primary_address(rs: RedisSettings) -> tuple[str, int]:
    """The primary the Sentinels name now; StoreError saying why when none does."""
    manager = sentinel(rs)
    try:
        host, port = manager.discover_master(rs.master_name)
        return str(host), int(port)
    except MasterNotFoundError as e:
        raise StoreError(str(e)) from None
    finally:
        manager.close()


def node_client(rs: RedisSettings, host: str, port: int) -> redis.Redis:
    """One data node, as the clients connect to it, with no Sentinel and no retry: what
    ``check`` asks about the primary (worker/store/sentinel_view.py)."""
    c = _conn(rs)
    return redis.Redis(host=host, port=port, ssl=c.tls, socket_timeout=SENTINEL_TIMEOUT_S,
                       decode_responses=True, **c.node)


def sync_client(where: RedisSettings | str, *, decode: bool = False,
                socket_timeout: float | None = None, wait_s: float | None = None
                ) -> redis.Redis:
    """A synchronous client (the sweeper, the metrics, the bounce watch's lease, check).
    ``wait_s``: a command is retried for at most this long (a failover included) instead
    of ``[redis] failover_wait_s`` — for a caller whose answer is worthless later (the
    bounce watch's lease, worker/store/watch_lock.py); with one Redis, it replaces
    redis-py's retry policy, which could wait longer."""
    rs = _settings(where)
    if not rs.sentinels:
        bounded = {} if wait_s is None else {
            "retry": FailoverRetry(wait_s), "socket_connect_timeout": min(
                CONNECT_TIMEOUT_S, socket_timeout or CONNECT_TIMEOUT_S)}
        return redis.Redis.from_url(rs.url, decode_responses=decode,
                                    socket_timeout=socket_timeout, **bounded)
    return sentinel(rs).master_for(
        rs.master_name, redis_class=FollowingRedis, decode_responses=decode,
        socket_timeout=min(socket_timeout or NODE_TIMEOUT_S, NODE_TIMEOUT_S),
        retry=FailoverRetry(min(wait_s or rs.failover_wait_s, rs.failover_wait_s)),
        connection_class=FollowingSSLConnection if _conn(rs).tls else FollowingConnection)


def async_client(where: RedisSettings | str, *, decode: bool = True) -> aioredis.Redis:
    """The Store's client (redis.asyncio)."""
    rs = _settings(where)
    if not rs.sentinels:
        return aioredis.Redis.from_url(rs.url, decode_responses=decode,
                                       health_check_interval=30)
    c = _conn(rs)
    manager = AsyncSentinels(sentinel_addrs(rs), sentinel_kwargs=c.sentinel, **c.node)
    return manager.master_for(
        rs.master_name, redis_class=AsyncFollowingRedis, decode_responses=decode,
        health_check_interval=30, socket_timeout=NODE_TIMEOUT_S,
        retry=AsyncFailoverRetry(rs.failover_wait_s),
        connection_class=AsyncFollowingSSLConnection if c.tls else AsyncFollowingConnection)


def broker_client(where: RedisSettings | str) -> redis.Redis:
    """dramatiq's client: bytes replies, no socket timeout (what ``RedisBroker(url=…)``
    makes: its consumer blocks in no command, and a fetch is short)."""
    rs = _settings(where)
    if not rs.sentinels:
        return redis.Redis(connection_pool=redis.ConnectionPool.from_url(rs.url))
    return sync_client(rs)


def describe(where: RedisSettings | str) -> str:
    """Where the clients connect, for messages and logs (no password)."""
    rs = _settings(where)
    if not rs.sentinels:
        return safe_url(rs.url)
    return f"the primary of {rs.master_name!r} named by Sentinel at {', '.join(rs.sentinels)}"


def close(client: redis.Redis) -> None:
    """Close a sync client and, with Sentinel, its connections to the Sentinels."""
    client.close()
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    if manager is not None:
        manager.close()


async def aclose(client: aioredis.Redis) -> None:
    """:func:`close` for the Store's client (redis-py's ``Sentinel.aclose``, 8.1 on)."""
    await client.aclose()
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    if manager is not None:
        await manager.aclose()
