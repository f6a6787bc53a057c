"""The Redis errors that code outside the store may catch, named here so that no module
outside ``worker/store/`` imports redis (tests/test_layers.py checks that)."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["RedisError", "REDIS_UNREACHABLE"]

# Redis is away or too slow (not: it refused a command): wait, retry, or say so
REDIS_UNREACHABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError)
