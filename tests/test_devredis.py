"""The private redis-server a first run starts: real binary, real persistence."""

from __future__ import annotations

import os
import signal

import pytest
import redis

from tests.helpers import free_port, wait_for
from worker.devredis import ensure_redis, redis_answers, redis_server_binary, start_redis
from worker.errors import StoreError


def test_binary_is_shipped_by_a_python_package():
    assert os.access(redis_server_binary(), os.X_OK)


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not _alive(pid), timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child is gone for our purposes
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def test_private_server_keeps_data_across_restarts(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    msg = ensure_redis(url, tmp_path / "redis", start_private=True)
    assert msg and f"127.0.0.1:{port}" in msg and "kill" in msg
    pid = int((tmp_path / "redis" / "redis.pid").read_text())
    try:
        redis.Redis.from_url(url).set("omitama:probe", "残る")
        assert ensure_redis(url, tmp_path / "redis", start_private=True) is None  # already up
    finally:
        _stop(pid)
    assert not redis_answers(url)
    pid = start_redis(port, tmp_path / "redis")
    try:
        assert redis.Redis.from_url(url).get("omitama:probe").decode() == "残る"
        assert (tmp_path / "redis" / "appendonly.aof").exists()
    finally:
        _stop(pid)


def test_no_private_server_for_remote_or_when_disabled(tmp_path):
    with pytest.raises(StoreError, match="no Redis answers at redis://127.0.0.1:1"):
        ensure_redis("redis://127.0.0.1:1/0", tmp_path, start_private=False)
    # only a loopback URL gets a private server (.invalid never resolves: no traffic leaves)
    with pytest.raises(StoreError, match="no Redis answers at redis://redis.invalid:6379"):
        ensure_redis("redis://redis.invalid:6379/0", tmp_path, start_private=True)
    assert not (tmp_path / "redis.pid").exists()
