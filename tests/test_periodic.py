"""The periodic jobs of a worker process (worker/queue/periodic.py): the daily purge and
the reminder pass share one thread and one Runtime, built once — the reminder loop used to
build a whole Runtime (store, relay pool) every minute — and a job that fails never stops
the others. Real Redis."""

from __future__ import annotations

import logging

from tests.helpers import wait_for, with_store
from worker.queue.periodic import Job, Periodic, purge_job
from worker.runtime import Runtime


def test_jobs_share_one_runtime_and_a_failing_one_stops_nothing(settings, clean_redis, caplog):
    seen: list[int] = []
    failed: list[int] = []

    async def count(rt: Runtime) -> None:
        await rt.store.ping()  # the runtime's store works on this thread's loop
        seen.append(id(rt))

    async def boom(rt: Runtime) -> None:
        failed.append(1)
        raise RuntimeError("a bug in one job")

    caplog.set_level(logging.ERROR, "worker.queue.periodic")
    p = Periodic(settings, [Job("count", 0.05, count), Job("boom", 0.05, boom)]).start()
    try:
        wait_for(lambda: len(seen) >= 5 and len(failed) >= 3)
    finally:
        p.stop()
    assert len(set(seen)) == 1  # one Runtime for every turn of every job
    assert "boom: failed; the next turn tries again" in caplog.text


def test_the_purge_job_runs_the_days_purge_once_across_processes(settings, clean_redis):
    """Two processes' purge jobs at the purge hour: the day's purge runs once (the day's
    marker in Redis), and each job then leaves the day alone."""
    from worker.settings import RetentionSettings

    s = settings.model_copy(update={"retention": RetentionSettings.model_validate(
        {**dict(settings.retention), "purge_hour": 0})})
    jobs = [purge_job("host-a:1"), purge_job("host-b:2")]
    p = Periodic(s, [Job(f"purge{i}", 0.05, j.run) for i, j in enumerate(jobs)]).start()
    try:
        wait_for(lambda: with_store(s, lambda st: st.retention.last_report()))
    finally:
        p.stop()
    report = with_store(s, lambda st: st.retention.last_report())
    assert report["by"] in ("host-a:1", "host-b:2")
