"""Issue 19 #2: a staff action is reported done only once a replica has it.

A real primary and replica (tests/redis_lab.py). With ``[staff_writes] replicas = 1``
each staff action — approve (with the code, without it), reject, remove, re-enable, a
call marked done and undone — comes back kept and the replica has it at that moment;
with the replica stopped it comes back "maybe not kept" (``NotConfirmed``) within the
timeout, the page shows the warning and the command exits 75; repeated after the replica
is back it is ``AlreadyDone`` and kept, with one audit line. With the default (0) no WAIT
reaches Redis at all. Each action twice on the shared Redis: the second changes nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from tests.helpers import set_contact, variant, with_store
from tests.redis_lab import Lab, lab_or_skip
from tests.test_operations import cli
from tests.test_staff_atomic import _acts
from worker.cli.main import EXIT_NOT_CONFIRMED
from worker.contact import ContactState
from worker.errors import AlreadyDone, NotConfirmed
from worker.store.core import Store
from worker.store.keys import Keys
from worker.store.replicas import confirmed_by_replicas

TIMEOUT_MS = 300  # with the replica stopped: every such action takes this long
KEPT_MS = 5000  # with it running: WAIT returns at the ack; a loaded machine may take a while
MARGIN_S = 1.0  # a loaded CI machine; the WAIT itself is bounded by TIMEOUT_MS


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_or_skip(tmp_path_factory.mktemp("staffwait") / "lab", sentinels=0) as lab:
        yield lab


@pytest.fixture
def replica_back(lab: Lab) -> Iterator[None]:
    """Whatever a test does to the replica, it is running and in sync afterwards."""
    yield
    lab.replicas[0].resume()
    lab.wait_synced()


def on_lab(settings: Any, lab: Lab, replicas: int = 1, timeout_ms: int = KEPT_MS) -> Any:
    return variant(settings, redis={"url": lab.primary.url, "start_private": False},
                   staff_writes={"replicas": replicas, "timeout_ms": timeout_ms})


def _cli_env(lab: Lab, timeout_ms: int = TIMEOUT_MS) -> dict[str, str]:
    """The command's settings for the lab, one replica to confirm."""
    return {"OMITAMA_NOTIFY_REDIS__URL": lab.primary.url,
            "OMITAMA_NOTIFY_REDIS__START_PRIVATE": "false",
            "OMITAMA_NOTIFY_STAFF_WRITES__REPLICAS": "1",
            "OMITAMA_NOTIFY_STAFF_WRITES__TIMEOUT_MS": str(timeout_ms)}


def _card() -> str:
    return f"R{uuid.uuid4().hex[:8]}"


async def _audited(store: Store, card: str, kind: str) -> int:
    return len([e for e in await store.history(card) if e.get("kind") == kind])


@asynccontextmanager
async def _stores(lab: Lab, s: Any) -> AsyncIterator[tuple[Store, Store]]:
    """The store on the primary as production builds it, and one reading the replica."""
    store = Store.from_settings(s)
    replica = Store.connect(lab.replicas[0].url, s.redis.key_prefix)
    try:
        yield store, replica
    finally:
        lab.replicas[0].resume()
        await store.close()
        await replica.close()


@pytest.mark.parametrize("stopped", [False, True], ids=["replica-up", "replica-stopped"])
@pytest.mark.parametrize("name", list(_acts()))
def test_an_action_is_kept_once_the_replica_has_it_else_maybe_not_and_a_repeat_keeps_it(
        lab: Lab, settings: Any, replica_back: None, name: str, stopped: bool) -> None:
    setup, act, done, kind = _acts()[name]
    s, short = on_lab(settings, lab), on_lab(settings, lab, timeout_ms=TIMEOUT_MS)

    async def go() -> None:
        async with _stores(lab, s) as (store, replica), _stores(lab, short) as (hasty, _):
            card = _card()
            await setup(store, s, card)
            if not stopped:
                await act(store, s, card)  # kept: no NotConfirmed
                # confirmed means on the replica now, not eventually
                assert await done(replica, card)
                assert await _audited(replica, card, kind) == 1
            else:
                lab.wait_synced()
                lab.replicas[0].pause()
                start = time.monotonic()
                with pytest.raises(NotConfirmed) as e:
                    await act(hasty, short, card)
                took = time.monotonic() - start
                assert (e.value.acked, e.value.wanted, e.value.timeout_ms) == (0, 1, TIMEOUT_MS)
                assert TIMEOUT_MS / 1000 <= took < TIMEOUT_MS / 1000 + MARGIN_S
                assert await done(store, card)  # written on the primary, all the same
                lab.replicas[0].resume()
                lab.wait_synced()
            # the repeat (a double click; what staff are asked for): changes nothing, kept
            with pytest.raises(AlreadyDone):
                await act(store, s, card)
            assert await done(replica, card) and await _audited(replica, card, kind) == 1
            assert await _audited(store, card, kind) == 1
    asyncio.run(go())


def test_wait_on_another_pooled_connection_would_answer_for_the_wrong_write(
        lab: Lab, settings: Any, replica_back: None) -> None:
    """Why the mark and the WAIT share one connection: WAIT answers for the writes of the
    connection it runs on. Another pooled connection, whose last write the replica has,
    gets "1 replica" at once although the replica is stopped and lacks the new write."""
    key = f"{settings.redis.key_prefix}staffwait:probe"

    async def go() -> None:
        writer = aioredis.Redis.from_url(lab.primary.url, decode_responses=True)
        other = aioredis.Redis.from_url(lab.primary.url, decode_responses=True)
        try:
            await other.set(key, "an earlier write, on the replica")
            assert await other.wait(1, 5000) == 1  # acknowledged to the primary
            lab.replicas[0].pause()
            await writer.set(key, "written while the replica is stopped")
            start = time.monotonic()
            assert await other.wait(1, TIMEOUT_MS) == 1  # the wrong answer
            assert time.monotonic() - start < TIMEOUT_MS / 1000
            rep = await confirmed_by_replicas(writer, Keys(settings.redis.key_prefix)
                                              .replicas_mark, 1, TIMEOUT_MS)
            assert not rep.kept and rep.acked == 0
            assert str(rep) == f"maybe not kept (0 of 1 replicas in {TIMEOUT_MS} ms)"
            lab.replicas[0].resume()
            lab.wait_synced()
            rep = await confirmed_by_replicas(writer, Keys(settings.redis.key_prefix)
                                              .replicas_mark, 1, KEPT_MS)
            assert rep.kept and str(rep) == "kept (1 of 1 replicas)"
            await writer.delete(key)
        finally:
            lab.replicas[0].resume()
            await writer.aclose()
            await other.aclose()
    asyncio.run(go())


def _commandstats(lab: Lab) -> dict[str, Any]:
    return lab.primary.client().info("commandstats")


def test_with_the_default_no_wait_is_sent_at_all(lab: Lab, settings: Any) -> None:
    """[staff_writes] replicas = 0 (the shipped value): every action as before — not one
    WAIT, not the mark — and with 1, one WAIT per action."""
    assert settings.staff_writes.replicas == 0
    for replicas, waits in ((0, 0), (1, len(_acts()))):
        s = on_lab(settings, lab, replicas)

        async def go() -> None:
            store = Store.from_settings(s)
            try:
                cards = {name: _card() for name in _acts()}
                for name, (setup, _, _, _) in _acts().items():  # first: some confirm too
                    await setup(store, s, cards[name])
                lab.primary.client().config_resetstat()
                for name, (_, act, done, _) in _acts().items():
                    await act(store, s, cards[name])
                    assert await done(store, cards[name])
            finally:
                await store.close()
        asyncio.run(go())
        stats = _commandstats(lab)
        assert int(stats.get("cmdstat_wait", {}).get("calls", 0)) == waits, stats.keys()
        assert int(stats.get("cmdstat_incrby", {}).get("calls", 0)) == waits


def test_the_command_exits_75_and_says_to_repeat_then_the_repeat_is_done(
        lab: Lab, settings: Any, replica_back: None) -> None:
    s = on_lab(settings, lab)
    card = _card()
    with_store(s, lambda st: set_contact(st, card, ContactState.SUSPENDED))
    lab.wait_synced()
    env = _cli_env(lab)
    args = ("review", "reenable", card, "--staff", "S01", "--reason", "受信設定を変更")
    lab.replicas[0].pause()
    try:
        r = cli(*args, env=env)
    finally:
        lab.replicas[0].resume()
    assert r.returncode == EXIT_NOT_CONFIRMED == 75, (r.stdout, r.stderr)
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1
    assert "0 of 1 replica(s)" in r.stderr and "run the same command again" in r.stderr
    lab.wait_synced()
    again = cli(*args, env=_cli_env(lab, KEPT_MS))
    assert again.returncode == 0, again.stderr
    assert "already" in again.stdout
    history = with_store(s, lambda st: st.history(card))
    assert [e["kind"] for e in history].count("reenabled") == 1


def test_the_page_shows_the_warning_and_the_repeat_as_done(
        lab: Lab, settings: Any, replica_back: None, tmp_path: Path) -> None:
    from tests.test_web import act, client_for, flash, logged_in
    from worker.web.wording import ERROR_JA, NOT_CONFIRMED_JA

    # one setting for both: the warning takes this long, the repeat returns at the ack
    s = variant(on_lab(settings, lab, timeout_ms=1000), mail={"outbox_dir": tmp_path / "out"})
    card, pending = _card(), _card()
    with_store(s, lambda st: set_contact(st, card, ContactState.SUSPENDED))
    with_store(s, lambda st: set_contact(st, pending, ContactState.PENDING))
    with client_for(s) as web:
        logged_in(s, web, f"S{uuid.uuid4().hex[:6]}")
        lab.wait_synced()
        lab.replicas[0].pause()
        try:
            page = act(web, "/failures/reenable", card=card, reason="受信設定を変更",
                       anchor="failure-x")
            assert flash(page) == f"warn: {NOT_CONFIRMED_JA}"
            # the approved row leaves the list: the warning is at the top, not in the row
            page = act(web, "/pending/approve-without-code", card=pending, reason="来館",
                       anchor=f"pending-{pending}")
            assert flash(page) == f"warn: {NOT_CONFIRMED_JA}"
            assert f'id="pending-{pending}"' not in page.text
        finally:
            lab.replicas[0].resume()
        lab.wait_synced()
        page = act(web, "/failures/reenable", card=card, reason="受信設定を変更")
        assert flash(page) == "ok: " + ERROR_JA["already_active"].format(card=card)


# -- each action twice, on the shared Redis (both CI runs; no replica wanted) ---------

@pytest.mark.parametrize("name", list(_acts()))
def test_each_action_twice_the_second_changes_nothing_and_writes_no_audit_line(
        clean_redis: Any, settings: Any, name: str) -> None:
    setup, act, done, kind = _acts()[name]

    async def go() -> None:
        store = Store.from_settings(settings)
        try:
            card = _card()
            await setup(store, settings, card)
            await act(store, settings, card)
            record = await store.r.hgetall(store.k.patron(card))
            with pytest.raises(AlreadyDone) as e:
                await act(store, settings, card)
            assert e.value.kind.startswith("already_")
            assert await store.r.hgetall(store.k.patron(card)) == record
            assert await done(store, card) and await _audited(store, card, kind) == 1
            assert not await store.r.exists(store.k.replicas_mark)  # no WAIT step at 0
        finally:
            await store.close()
    asyncio.run(go())


def test_the_command_line_approval_repeated_without_an_address_is_done_not_refused(
        clean_redis: Any, settings: Any) -> None:
    """`review approve CARD --without-code` names no registration: the repeat finds the one
    approved last, and says so (exit 0) instead of "no registration is waiting"."""
    card = _card()
    with_store(settings, lambda st: set_contact(st, card, ContactState.PENDING))
    args = ("review", "approve", card, "--without-code", "--reason", "来館で確認",
            "--staff", "S01")
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    again = cli(*args)
    assert again.returncode == 0 and "approved already" in again.stdout, again.stderr
    reject = cli("review", "reject", card, "--reason", "x", "--staff", "S01")
    assert reject.returncode == 1 and "not awaiting approval" in reject.stderr
    history = with_store(settings, lambda st: st.history(card))
    assert [e["kind"] for e in history].count("approved_without_code") == 1


def test_a_rejection_sent_twice_from_the_page_is_done_once(clean_redis: Any, settings: Any,
                                                          tmp_path: Path) -> None:
    from tests.test_web import act, client_for, flash, logged_in, shown_registration
    from worker.web.wording import ERROR_JA

    s = variant(settings, mail={"outbox_dir": tmp_path / "out"})
    card = _card()
    with_store(s, lambda st: set_contact(st, card, ContactState.PENDING))
    with client_for(s) as web:
        logged_in(s, web)
        shown = shown_registration(web, card)
        assert shown
        first = act(web, "/pending/reject", card=card, reason="番号が違う", registration=shown)
        assert flash(first).startswith("ok: ")
        again = act(web, "/pending/reject", card=card, reason="番号が違う", registration=shown)
        assert flash(again) == "ok: " + ERROR_JA["already_rejected"].format(card=card)
    history = with_store(s, lambda st: st.history(card))
    assert [e["kind"] for e in history].count("rejected") == 1


def test_an_account_change_is_confirmed_too(lab: Lab, settings: Any,
                                            replica_back: None) -> None:
    """A removed staff account must not come back with a failover: `staff remove` with
    the replica stopped exits 75 like a staff action."""
    s = on_lab(settings, lab)
    staff_id = f"S{uuid.uuid4().hex[:6]}"
    env = _cli_env(lab)
    from worker.web.auth import Accounts
    with_store(s, lambda st: Accounts(st, s.web).add(staff_id, "kasidasi-2026"))
    lab.wait_synced()
    lab.replicas[0].pause()
    try:
        r = cli("staff", "remove", staff_id, env=env)
    finally:
        lab.replicas[0].resume()
    assert r.returncode == EXIT_NOT_CONFIRMED, (r.stdout, r.stderr)
    lab.wait_synced()
    assert not lab.replicas[0].client().exists(f"{settings.redis.key_prefix}staff:{staff_id}")


def test_patron_forget_is_confirmed_too(lab: Lab, settings: Any, replica_back: None) -> None:
    """Forgotten data must not come back with a failover: not confirmed → NotConfirmed;
    the repeat leaves the same state (one `forgotten` line) and is confirmed."""
    from worker.app.patron_data import forget

    s, short = on_lab(settings, lab), on_lab(settings, lab, timeout_ms=TIMEOUT_MS)
    card = _card()
    with_store(s, lambda st: set_contact(st, card, ContactState.ACTIVE))
    lab.wait_synced()
    lab.replicas[0].pause()
    try:
        with pytest.raises(NotConfirmed):
            with_store(short, lambda st: forget(st, short, card, "S01", "利用者の申し出"))
    finally:
        lab.replicas[0].resume()
    lab.wait_synced()
    with_store(s, lambda st: forget(st, s, card, "S01", "利用者の申し出"))
    on_replica = lab.replicas[0].client()
    assert not on_replica.exists(f"{settings.redis.key_prefix}patron:{card}")
    assert len(on_replica.lrange(f"{settings.redis.key_prefix}audit:{card}", 0, -1)) == 1


def test_a_redis_error_after_the_action_is_maybe_not_kept_never_a_crash() -> None:
    """The confirmation comes after the action was answered: if Redis fails then (a
    failover under way), the answer is "maybe not kept", which staff can act on."""
    async def go() -> None:
        dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        try:
            rep = await confirmed_by_replicas(dead, "x:replicas:mark", 1, TIMEOUT_MS)
        finally:
            await dead.aclose()
        assert not rep.kept and rep.acked == 0 and "ConnectionError" in rep.why
        with pytest.raises(NotConfirmed, match="0 of 1 replica"):
            rep.require()
    asyncio.run(go())


def test_after_the_primary_died_the_confirmation_is_not_asked_of_the_new_one(
        settings: Any, tmp_path: Path) -> None:
    """Through Sentinel a command that meets a failover is retried on the new primary
    (worker/store/connect.py). The confirmation must not be: the new primary's replica
    would confirm the mark while the action, taken by the dead primary and never copied,
    is gone. Here the action is written while both replicas are stopped, the primary is
    killed, and the confirmation says "maybe not kept" at once instead of "kept" from the
    new primary after the failover."""
    from tests.test_sentinel import sentinel_settings
    from worker.contact.changes import reenabled
    from worker.store.replicas import confirm_staff_write

    with lab_or_skip(tmp_path / "lab", replicas=2) as lab:
        s = variant(sentinel_settings(settings, lab),
                    staff_writes={"replicas": 1, "timeout_ms": KEPT_MS})
        card = _card()

        async def go() -> None:
            store = Store.from_settings(s)
            try:
                await set_contact(store, card, ContactState.SUSPENDED)
                lab.wait_synced()
                for r in lab.replicas:
                    r.pause()
                # and cut off: what follows stays on the primary (not even in a socket buffer)
                lab.primary.client().client_kill_filter(_type="replica")
                # the action's own step, as Registry.apply makes it, without its confirmation
                await store.contacts.apply(card, lambda b: reenabled(card, b, "S01", "設定変更"))
                old = lab.primary
                old.kill9()
                for r in lab.replicas:
                    r.resume()
                start = time.monotonic()
                with pytest.raises(NotConfirmed):
                    await confirm_staff_write(store)
                assert time.monotonic() - start < 5  # not after the failover
                lab.wait_failover(old)
                # what "maybe not kept" warned of: the new primary never had the action
                assert (await store.contacts.get(card))["state"] == "suspended"
            finally:
                await store.close()
        asyncio.run(go())


# -- the sender-problem alert closed (review sender-fixed, 解決済み): as every staff action --

async def _raise_sender_alert(store: Store) -> None:
    """A fresh alert: two failures our sender caused, two patrons."""
    from worker.app.sender_problems import raise_alert

    await store.r.delete(store.k.sender_problem, store.k.sender_cards, store.k.sender_closed)
    for card in ("C1", "C2"):
        await raise_alert(store, {"reason": "authfailure", "status": "5.7.26",
                                  "diagnostic": "550 5.7.26 unauthenticated sender"}, [card])


def _closed_by(closings: list[dict[str, Any]], staff: str) -> None:
    assert [(c["staff"], c["count"], c["patrons"], c["reason"]) for c in closings] == [
        (staff, 2, 2, "authfailure")], closings


@pytest.mark.parametrize("stopped", [False, True], ids=["replica-up", "replica-stopped"])
def test_closing_the_sender_problem_alert_is_confirmed_and_names_who_closed_it(
        lab: Lab, settings: Any, replica_back: None, stopped: bool) -> None:
    from worker.app.sender_problems import close

    s, short = on_lab(settings, lab), on_lab(settings, lab, timeout_ms=TIMEOUT_MS)

    async def go() -> None:
        async with _stores(lab, s) as (store, replica), _stores(lab, short) as (hasty, _):
            await _raise_sender_alert(store)
            if not stopped:
                await close(store, "S03")  # kept: no NotConfirmed
                assert await replica.sender_problems.get() is None
                _closed_by(await replica.sender_problems.closings(), "S03")
            else:
                lab.wait_synced()
                lab.replicas[0].pause()
                start = time.monotonic()
                with pytest.raises(NotConfirmed):
                    await close(hasty, "S03")
                assert time.monotonic() - start < TIMEOUT_MS / 1000 + MARGIN_S
                assert await store.sender_problems.get() is None  # written all the same
                lab.replicas[0].resume()
                lab.wait_synced()
            with pytest.raises(AlreadyDone):  # the repeat: nothing written, kept
                await close(store, "S03")
            _closed_by(await replica.sender_problems.closings(), "S03")
    asyncio.run(go())


def test_sender_fixed_exits_75_when_not_confirmed_then_the_repeat_is_done(
        lab: Lab, settings: Any, replica_back: None) -> None:
    s = on_lab(settings, lab)
    with_store(s, _raise_sender_alert)
    lab.wait_synced()
    args = ("review", "sender-fixed", "--staff", "S04")
    lab.replicas[0].pause()
    try:
        r = cli(*args, env=_cli_env(lab))
    finally:
        lab.replicas[0].resume()
    assert r.returncode == EXIT_NOT_CONFIRMED, (r.stdout, r.stderr)
    assert r.stdout == "" and "run the same command again" in r.stderr
    lab.wait_synced()
    again = cli(*args, env=_cli_env(lab, KEPT_MS))
    assert again.returncode == 0 and "closed already" in again.stdout, again.stderr
    _closed_by(with_store(s, lambda st: st.sender_problems.closings()), "S04")


def test_sender_fixed_twice_on_one_redis_names_the_staff_once(clean_redis: Any,
                                                               settings: Any) -> None:
    with_store(settings, _raise_sender_alert)
    first = cli("review", "sender-fixed", "--staff", "S05")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("sender-problem alert closed by S05 (2 failure(s) since ")
    again = cli("review", "sender-fixed", "--staff", "S05")
    assert again.returncode == 0 and "closed already" in again.stdout, again.stderr
    _closed_by(with_store(settings, lambda st: st.sender_problems.closings()), "S05")
    assert not with_store(settings, lambda st: st.r.exists(st.k.replicas_mark))


def test_check_says_whether_the_replicas_to_wait_for_are_there(lab: Lab) -> None:
    ok = cli("check", env=_cli_env(lab))
    assert ok.returncode == 0, ok.stdout
    assert "staff actions confirmed by 1 of its 1 replica(s)" in ok.stdout
    two = cli("check", env={**_cli_env(lab), "OMITAMA_NOTIFY_STAFF_WRITES__REPLICAS": "2"})
    assert two.returncode == 1
    assert "[staff_writes] replicas = 2, but the primary has 1 replica(s) connected" in two.stdout
