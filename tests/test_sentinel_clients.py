"""The clients worker/store/connect.py makes for Redis Sentinel, as built (no server is
reached): TLS and its options come from ``[redis] url`` alone, the same for the data
nodes, the Sentinels and the node ``check`` asks; closing a client closes its Sentinels.
What they do across a failover: tests/test_sentinel.py (real servers)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio.connection as aioconn
from pydantic import SecretStr
from redis.connection import Connection, SSLConnection

from worker.settings import RedisSettings
from worker.store.connect import aclose, async_client, close, node_client, sync_client
from worker.store.sentinels import (AsyncFollowingConnection, AsyncFollowingSSLConnection,
                                    FollowingConnection, FollowingSSLConnection)

SENTINELS = ["127.0.0.1:1", "[::1]:2"]


def _settings(url: str) -> RedisSettings:
    return RedisSettings(url=url, sentinels=SENTINELS, master_name="omitama",
                         sentinel_password=SecretStr("sentinel-pw"))


def _pools(client: Any) -> tuple[Any, list[Any]]:
    """The data node's pool of a client, and each of its Sentinels' pools."""
    pool = client.connection_pool
    return pool, [s.connection_pool for s in pool.sentinel_manager.sentinels]


@pytest.mark.parametrize("url,tls", [
    ("rediss://:node-pw@ignored:1/3?ssl_cert_reqs=none&ssl_ca_certs=/etc/ca.pem", True),
    ("redis://:node-pw@ignored:1/3", False),
])
def test_tls_and_its_options_come_from_the_url_for_every_connection(url, tls):
    rs = _settings(url)
    tls_options = {"ssl_cert_reqs": "none", "ssl_ca_certs": "/etc/ca.pem"} if tls else {}

    def same_options(kwargs: dict[str, Any]) -> None:
        assert tls_options.items() <= kwargs.items(), kwargs
        assert tls or kwargs.get("ssl_ca_certs") is None

    sync = sync_client(rs)
    node, sentinels = _pools(sync)
    assert node.connection_class is (FollowingSSLConnection if tls else FollowingConnection)
    assert (node.connection_kwargs["password"], node.connection_kwargs["db"]) == ("node-pw", 3)
    same_options(node.connection_kwargs)
    for pool in sentinels:
        assert pool.connection_class is (SSLConnection if tls else Connection)
        assert pool.connection_kwargs["password"] == "sentinel-pw"
        same_options(pool.connection_kwargs)
    close(sync)

    async def built() -> None:
        client = async_client(rs)
        node, sentinels = _pools(client)
        assert node.connection_class is (AsyncFollowingSSLConnection if tls
                                         else AsyncFollowingConnection)
        same_options(node.connection_kwargs)
        for pool in sentinels:
            assert pool.connection_class is (aioconn.SSLConnection if tls
                                             else aioconn.Connection)
            same_options(pool.connection_kwargs)
        await aclose(client)
    asyncio.run(built())

    checked = node_client(rs, "10.0.0.1", 6379)
    assert checked.connection_pool.connection_class is (SSLConnection if tls else Connection)
    same_options(checked.connection_pool.connection_kwargs)
    checked.close()


def test_closing_the_stores_client_closes_its_sentinels(monkeypatch):
    """connect.aclose goes through redis-py's own ``Sentinel.aclose`` (redis-py 8.1)."""
    closed: list[str] = []

    async def go() -> None:
        client = async_client(_settings("redis://ignored/0"))
        manager = client.connection_pool.sentinel_manager
        for s in manager.sentinels:
            async def note(s: Any = s) -> None:
                closed.append(f"{s.connection_pool.connection_kwargs['host']}")
            monkeypatch.setattr(s, "aclose", note)
        await aclose(client)
    asyncio.run(go())
    assert closed == ["127.0.0.1", "::1"]
