"""Digest windows in Redis against a model (issue 22): any interleaving of holds arriving
(a first event or a duplicate; joining its window after its claim, or in the claim's own
call), cancellations, a poller taking the window, a stale take
(a poller that read the window's entry before another took it), and the digest's record. The store's own steps on a real Redis —
the claim, ``gather_join.lua``, ``gather_take.lua``, ``close_hold.lua``, the digest's
MULTI of ``finish_hold`` — no worker, so every interleaving is one hypothesis draws.

What must hold: an open window has exactly one entry in ``gather_due`` (what the
pollers send it by: worker/queue/windows.py), due at its end, and none once taken; a take
gets exactly the holds waiting in that window, each once; a stale take gets nothing; a hold taken into a digest is fenced from other claims until its lease ends;
every hold ends in one outcome.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tests.helpers import set_contact, with_store
from worker.contact import ContactState
from worker.mail.compose import new_token
from worker.store.digest import JoinAsked
from worker.store.vocab import ClaimVerdict, GatherVerdict, HoldStatus

HOLDS = [f"HM{i}" for i in range(4)]
CARD, BRANCH = "C-M", "ogawa"
LEASE_MS = 600_000  # no lease runs out within an example
WINDOW_MS = 600_000  # nor a window: its end is when the model's "take" says so

OPS = st.lists(st.one_of(
    st.tuples(st.just("arrive"), st.sampled_from(HOLDS)),
    st.tuples(st.just("arrive_join"), st.sampled_from(HOLDS)),  # joined in the claim's call
    st.tuples(st.just("cancel"), st.sampled_from(HOLDS)),
    st.tuples(st.just("take"), st.just("")),
    st.tuples(st.just("stale_take"), st.just("")),
    st.tuples(st.just("record"), st.just(""))), min_size=1, max_size=25)


class Model:
    def __init__(self) -> None:
        self.status: dict[str, str] = {}  # waiting | taken | sent | cancelled
        self.window: str | None = None
        self.opener = ""
        self.members: set[str] = set()
        self.old_windows: list[str] = []
        self.batch: tuple[str, list[str]] | None = None  # the digest token and its holds


async def _run(store: Any, ops: list[tuple[str, str]]) -> None:
    m = Model()
    for op, h in ops:
        what = f"{op} {h} after {m.status}"
        if op in ("arrive", "arrive_join"):
            at_claim = {"contact_of": CARD, "join": JoinAsked(CARD, BRANCH, WINDOW_MS, new_token())
                        } if op == "arrive_join" else {}
            claim = await store.claim_hold(h, token=new_token(), lease_ms=LEASE_MS, ttl_s=3600,
                                           fields={"event": "{}", "card_number": CARD,
                                                   "pickup_branch": BRANCH}, **at_claim)
            before = m.status.get(h)
            if before == "taken":
                assert claim.verdict == ClaimVerdict.BUSY, what  # fenced by the digest
                continue
            if before == "waiting":  # a duplicate waits for the window's end: not claimed
                assert claim.verdict == ClaimVerdict.BUSY, what  # again, no attempt more
                continue
            if before in ("sent", "cancelled"):
                assert claim.verdict == ClaimVerdict.DONE, what
                continue
            assert claim.verdict == ClaimVerdict.CLAIMED, what
            j = claim.joined if op == "arrive_join" else await store.digest.join(
                h, claim.token, CARD, BRANCH, window_ms=WINDOW_MS, lease_ms=LEASE_MS,
                new_id=new_token())
            assert j is not None, what
            assert j.verdict == GatherVerdict.WAIT, what
            if m.window is None:
                m.window, m.opener, m.members = j.gather_id, h, set()
            assert j.gather_id == m.window, what
            m.members.add(h)
            m.status[h] = "waiting"
        elif op == "cancel":
            await store.close_hold(h, HoldStatus.CANCELLED, ttl_s=3600)
            if m.status.get(h) != "sent":
                m.status[h] = "cancelled"
        elif op in ("take", "stale_take"):
            gid = m.window if op == "take" else (m.old_windows[-1] if m.old_windows else "x")
            if gid is None:
                continue
            token = new_token()
            took = await store.digest.take(CARD, BRANCH, gid, token, LEASE_MS)
            if op == "stale_take":
                assert took is None, what  # a window message that came twice, or late
                continue
            assert took is not None, what
            taken = [hold_id for hold_id, _ in took[0]]
            expected = {x for x in m.members if m.status.get(x) == "waiting"}
            assert sorted(taken) == sorted(expected), what
            assert all(rec["token"] == token for _, rec in took[0]), what
            for x in taken:
                m.status[x] = "taken"
            m.old_windows.append(gid)
            m.window, m.members = None, set()
            if taken:
                m.batch = (token, taken)
        elif op == "record" and m.batch is not None:
            token, taken = m.batch
            got = await store.digest.finish_all(
                [(x, HoldStatus.SENT, {"digest_holds": ",".join(taken)}, None, 0) for x in taken],
                token, CARD)
            for x, status in zip(taken, got):
                if m.status[x] == "cancelled":  # cancelled while its mail went out
                    assert status == HoldStatus.CANCELLED, what
                else:
                    assert status == HoldStatus.SENT, what
                    m.status[x] = "sent"
            m.batch = None
        due = await store.r.zrange(store.k.gather_due, 0, -1, withscores=True)
        if m.window is None:  # taken (or never opened): nothing left for the pollers
            assert due == [], what
        else:  # one entry, "{id} {branch} {card}", due at the window's end
            [(entry, at)] = due
            assert entry == f"{m.window} {BRANCH} {CARD}", what
            assert int(at) == int(await store.r.hget(store.k.gather(CARD, BRANCH), "due")), what
    for h, want in m.status.items():  # Redis agrees with the model at the end
        rec = await store.get_hold(h)
        have = rec.get("status")
        assert {"waiting": "retrying", "taken": "sending"}.get(want, want) == have, (h, rec)
        outcomes = [e for _, e in await store.r.xrange(store.k.outcomes)
                    if e.get("hold_id") == h and e.get("outcome") == "mailed"]
        assert len(outcomes) == (1 if want == "sent" else 0), (h, outcomes)


async def _clean(store: Any) -> None:
    await store.r.delete(*(store.k.hold(h) for h in HOLDS), store.k.gather(CARD, BRANCH),
                         store.k.inflight, store.k.gather_due, store.k.outcomes, store.k.sent(CARD),
                         store.k.patron(CARD))


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(OPS)
def test_windows_follow_the_model_whatever_the_interleaving(settings, clean_redis, ops) -> None:
    async def go(store: Any) -> None:
        await _clean(store)
        try:
            # approved: a claim joins only for an address that may be mailed
            await set_contact(store, CARD, ContactState.ACTIVE, address="m@example.jp")
            await _run(store, ops)
        finally:
            await _clean(store)
    with_store(settings, go)
