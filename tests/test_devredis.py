"""The private redis-server a first run starts: real binary, real persistence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.helpers import free_port, wait_for
from worker.store.devredis import private_redis, redis_answers, redis_server_binary, start_redis
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
    said: list[str] = []
    with private_redis(url, tmp_path / "redis", start_private=True, say=said.append) as pid:
        assert pid and f"127.0.0.1:{port}" in said[0] and "started a private redis-server" in said[0]
        redis.Redis.from_url(url).set("omitama:probe", "残る")
    assert not redis_answers(url) and "stopped the private redis-server" in said[-1]
    pid = start_redis(port, tmp_path / "redis")
    try:
        assert redis.Redis.from_url(url).get("omitama:probe").decode() == "残る"
        assert (tmp_path / "redis" / "appendonly.aof").exists()
    finally:
        _stop(pid)


def test_no_private_server_for_remote_or_when_disabled(tmp_path):
    def run(url: str, start_private: bool) -> None:
        with private_redis(url, tmp_path, start_private=start_private, say=print, require=True):
            raise AssertionError("no Redis, yet the command ran")

    with pytest.raises(StoreError, match="no Redis answers at redis://127.0.0.1:1"):
        run("redis://127.0.0.1:1/0", start_private=False)
    # only a loopback URL gets a private server (.invalid never resolves: no traffic leaves)
    with pytest.raises(StoreError, match="no Redis answers at redis://redis.invalid:6379"):
        run("redis://redis.invalid:6379/0", start_private=True)
    assert not (tmp_path / "redis.pid").exists()


# -- the private server lives as long as the command that started it -----------------------

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    """A first run: nothing on the port, start_private on, var/ under tmp_path."""
    (tmp_path / "settings.toml").write_text((ROOT / "settings.toml").read_text("utf-8"), "utf-8")
    return {**os.environ, "OMITAMA_NOTIFY_SETTINGS": str(tmp_path / "settings.toml"),
            "OMITAMA_NOTIFY_MAIL__TEMPLATES_DIR": str(ROOT / "templates" / "mail"),
            "OMITAMA_NOTIFY_REDIS__URL": f"redis://127.0.0.1:{port}/0",
            "OMITAMA_NOTIFY_REDIS__START_PRIVATE": "true", "OMITAMA_NOTIFY_WORKER__PROCESSES": "1",
            "OMITAMA_NOTIFY_WORKER__THREADS": "1"}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def _pid_on(url: str) -> int:
    return int(redis.Redis.from_url(url).info("server")["process_id"])


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_worker_stops_the_private_redis_it_started_and_data_stays(tmp_path, stop):
    port = free_port()
    url, env, data = f"redis://127.0.0.1:{port}/0", _env(tmp_path, port), tmp_path / "var" / "redis"
    proc = subprocess.Popen([sys.executable, "-m", "worker.cli.main", "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    redis_pid = None
    try:
        wait_for(lambda: redis_answers(url), timeout=30)
        redis_pid = _pid_on(url)
        redis.Redis.from_url(url).set("omitama:probe", "残る")
        # a one-shot command meanwhile uses the worker's server and leaves it running
        r = _cli(env, "review", "calls")
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert redis_answers(url)
    finally:
        if stop == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal
        else:
            os.kill(proc.pid, signal.SIGTERM)  # kill PID, a service manager: this process only
        out, _ = proc.communicate(timeout=60)
        if redis_pid and _alive(redis_pid):
            _stop(redis_pid)
    assert proc.returncode == 0, out
    assert f"started a private redis-server (pid {redis_pid})" in out
    assert f"stopped the private redis-server (pid {redis_pid}); its data stays in {data}" in out
    assert "Worker has been shut down" in out.split("stopped the private")[0]
    assert not _alive(redis_pid) and not redis_answers(url)
    # a one-shot command starts it on demand, says so, and stops it after
    r = _cli(env, "review", "rejected")
    assert r.returncode == 0 and r.stdout == "(none)\n", r.stderr
    said = r.stderr.splitlines()
    assert len(said) == 2 and "started a private redis-server" in said[0] and "stopped" in said[1]
    assert not redis_answers(url)
    pid = start_redis(port, data)
    try:
        assert redis.Redis.from_url(url).get("omitama:probe").decode() == "残る"
    finally:
        _stop(pid)


def test_a_private_redis_left_by_a_killed_run_is_taken_over_and_stopped(tmp_path):
    port = free_port()
    url, env, data = f"redis://127.0.0.1:{port}/0", _env(tmp_path, port), tmp_path / "var" / "redis"
    pid = start_redis(port, data)  # as after `kill -9` of a worker: no one will stop it
    try:
        r = _cli(env, "check")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"the private redis-server (pid {pid}) of an earlier run was still running" in r.stderr
        assert f"stopped the private redis-server (pid {pid})" in r.stderr
        assert not redis_answers(url)
    finally:
        if _alive(pid):
            _stop(pid)


def test_no_redis_and_no_private_one_says_how_to_get_one(tmp_path):
    env = {**_env(tmp_path, 1), "OMITAMA_NOTIFY_REDIS__START_PRIVATE": "false"}
    for args in (["review", "pending"], ["worker"], ["staff", "list"]):
        r = _cli(env, *args)
        assert r.returncode == 1, r.stdout
        [line] = r.stderr.splitlines()
        assert "127.0.0.1:1" in line and "start_private = true" in line \
            and "OMITAMA_NOTIFY_REDIS__URL" in line, (args, line)
    check = _cli(env, "check")
    [fail] = [x for x in check.stdout.splitlines() if x.startswith("FAIL  redis")]
    assert "start_private = true" in fail
    remote = {**env, "OMITAMA_NOTIFY_REDIS__URL": "redis://redis.invalid:6379/0"}
    [line] = _cli(remote, "review", "calls").stderr.splitlines()
    assert "check that Redis runs there" in line and "[redis] url" in line
    assert not (tmp_path / "var" / "redis").exists()
