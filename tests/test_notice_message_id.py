"""A notice's Message-ID is derived from its holds (issue 19, item 5): a hold mailed
again after its record was lost with the primary carries the Message-ID it had, so the
relay and the patron's mail app can fold the two; two holds never share one; a bounce
quoting it still traces to the hold.

Real Redis, a real dramatiq worker in this process, aiosmtpd on loopback.
"""

from __future__ import annotations

import re
import time
import uuid

from hypothesis import given, settings as hsettings, strategies as st

from tests.helpers import hold_event, run_worker, settings_for, variant, wait_for, with_store
from tests.test_digest import active, decoded, hold, outcomes
from tests.test_raw_redis_producer import envelope, raw_enqueue
from worker.mail.compose import notice_token
from worker.mail.mime import check_token

IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}", fullmatch=True)


def announce(r, s, event: dict) -> str:
    """The ILS's producer recipe (HSET + RPUSH), a new dramatiq message id each time."""
    rid = str(uuid.uuid4())
    raw_enqueue(r, s.redis.namespace, envelope("hold_ready", event, rid), rid)
    return rid


def lose(r, s, *hold_ids: str) -> None:
    """What a failover to a replica that had not yet the last writes loses of a mailed
    hold: its record, the name of its notice, the card's list of sent notices, its
    outcomes."""
    p = s.redis.key_prefix
    for h in hold_ids:
        notice = r.hget(f"{p}hold:{h}", "notice")
        r.delete(f"{p}hold:{h}", f"{p}notice:{notice}")
    r.delete(*r.keys(f"{p}sent:*"))
    for xid, f in r.xrange(f"{p}outcomes"):
        if f["hold_id"] in hold_ids:
            r.xdel(f"{p}outcomes", xid)


def message_ids(sink, to: str = "") -> list[str]:
    """The Message-IDs the sink got (those to ``to`` only), in order."""
    return [str(decoded(m)["Message-ID"]) for m in sink.messages if to in m.rcpt_tos[0]]


@given(st.lists(IDS, min_size=1, max_size=4, unique=True),
       st.lists(IDS, min_size=1, max_size=4, unique=True))
@hsettings(max_examples=300, deadline=None)
def test_two_different_sets_of_holds_never_share_a_token(a, b):
    secret = b"k" * 64
    ta, tb = notice_token(secret, a), notice_token(secret, b)
    assert check_token(ta) and re.fullmatch(r"[0-9a-f]{24}", ta)
    assert (ta == tb) == (set(a) == set(b))
    assert notice_token(secret, reversed(a)) == ta  # the order a digest lists them in: none
    assert notice_token(b"x" * 64, a) != ta  # another deployment's secret: another token


def test_the_token_is_the_deployments_and_the_same_in_every_process(settings, clean_redis):
    first = with_store(settings, lambda st: st.notice_name(["H1"]))
    again = with_store(settings, lambda st: st.notice_name(["H1"]))  # a new process's store
    assert first == again != with_store(settings, lambda st: st.notice_name(["H2"]))
    assert "H1" not in first and len(first) == 24


def test_a_hold_whose_record_was_lost_is_mailed_again_with_the_same_message_id(
        settings, smtp_sink, clean_redis, rclient, tmp_path):
    from tests.test_bounce_handling import dsn, ingest

    s = settings_for(settings, smtp_sink)
    active(s, "C1", "taro@docomo.ne.jp")
    active(s, "C2", "hanako@docomo.ne.jp")
    with run_worker(s):
        announce(rclient, s, hold_event("H1", "C1"))
        announce(rclient, s, hold_event("H2", "C2"))
        wait_for(lambda: len(smtp_sink.messages) == 2)
        lose(rclient, s, "H1")
        assert hold(s, "H1") == {}
        announce(rclient, s, hold_event("H1", "C1"))  # the ILS's reconciliation
        wait_for(lambda: hold(s, "H1").get("status") == "sent")
        time.sleep(0.5)  # not a sync: lets a fourth mail show up before we count
    first_h1, again_h1 = message_ids(smtp_sink, "taro@")
    [h2] = message_ids(smtp_sink, "hanako@")
    assert first_h1 == again_h1 != h2
    assert re.fullmatch(r"<hold\.[0-9a-f]{24}@.+>", first_h1)
    assert hold(s, "H1")["message_id"] == first_h1
    assert [o["outcome"] for o in outcomes(rclient, s) if o["hold_id"] == "H1"] == ["mailed"]
    # a bounce of the first mail (arriving after the loss) names the hold again
    f = tmp_path / "bounce.eml"
    first = next(m for m in smtp_sink.messages if m.rcpt_tos == ["taro@docomo.ne.jp"])
    f.write_bytes(dsn(first.data, "taro@docomo.ne.jp", "5.1.1", "550 5.1.1 user unknown"))
    [row] = ingest(str(f))
    assert (row["traced"], row["hold_id"], row["card_number"]) == ("message-id", "H1", "C1")


def test_a_retry_after_a_4xx_is_the_same_message_id(settings, smtp_sink, clean_redis, rclient):
    s = settings_for(settings, smtp_sink)
    active(s, "C1", "taro@docomo.ne.jp")
    smtp_sink.state.rcpt_rules["taro@docomo.ne.jp"] = ["451 4.3.0 try again later", None]
    with run_worker(s):
        announce(rclient, s, hold_event("H1", "C1"))
        wait_for(lambda: hold(s, "H1").get("status") == "sent")
    [mid] = message_ids(smtp_sink)  # the refused attempt left no message at the sink
    assert hold(s, "H1")["attempts"] == "2"
    assert mid == "<hold.%s@%s>" % (with_store(s, lambda st: st.notice_name(["H1"])),
                                     s.mail.message_id_domain)


def test_a_digest_retried_or_re_sent_after_a_loss_keeps_its_message_id(
        settings, smtp_sink, clean_redis, rclient, tmp_path):
    from tests.test_bounce_handling import dsn, ingest

    # 1 s, not the shipped 900 s: the digest, its 4xx and its retry's window must all come
    # within the test (tests/test_digest_shipped.py runs the shipped window)
    s = settings_for(settings, smtp_sink, gather_s=1.0)
    active(s, "C1", "taro@docomo.ne.jp")
    smtp_sink.state.rcpt_rules["taro@docomo.ne.jp"] = ["451 4.3.0 try again later", None]
    with run_worker(s):
        for h in ("H1", "H2"):
            announce(rclient, s, hold_event(h, "C1"))
        wait_for(lambda: {hold(s, h).get("status") for h in ("H1", "H2")} == {"sent"},
                 timeout=20)
        lose(rclient, s, "H1", "H2")
        for h in ("H2", "H1"):  # re-announced, in another order
            announce(rclient, s, hold_event(h, "C1"))
        wait_for(lambda: {hold(s, h).get("status") for h in ("H1", "H2")} == {"sent"},
                 timeout=20)
    first, again = message_ids(smtp_sink)
    assert first == again
    assert first == "<hold.%s@%s>" % (with_store(s, lambda st: st.notice_name(["H2", "H1"])),
                                       s.mail.message_id_domain)
    assert hold(s, "H1")["digest_holds"].count(",") == 1
    f = tmp_path / "bounce.eml"
    f.write_bytes(dsn(smtp_sink.messages[0].data, "taro@docomo.ne.jp", "5.1.1",
                      "550 5.1.1 user unknown"))
    [row] = ingest(str(f))
    assert row["traced"] == "message-id" and row["hold_id"] in ("H1", "H2")
    assert sorted(c["hold_id"] for c in with_store(s, lambda st: st.calls())) == ["H1", "H2"]


def test_with_return_paths_a_bounce_to_the_re_sent_mail_traces_to_the_hold(
        settings, smtp_sink, clean_redis, rclient, tmp_path, monkeypatch):
    """The return path stays random per mail: the re-sent mail has its own, recorded after
    the loss, and a bounce to it is verified evidence about the hold. One to the first
    mail's return path, whose record was lost too, is unverified (a token we cannot
    show we issued) — yet its quoted Message-ID still names the hold."""
    from tests.test_bounce_handling import dsn, ingest

    template = "bounce+{token}@city.omitama.ibaraki.jp"
    monkeypatch.setenv("OMITAMA_NOTIFY_MAIL__RETURN_PATH", template)  # for `bounces ingest`
    s = variant(settings_for(settings, smtp_sink), mail={"return_path": template})
    active(s, "C1", "taro@docomo.ne.jp")
    with run_worker(s):
        announce(rclient, s, hold_event("H1", "C1"))
        wait_for(lambda: hold(s, "H1").get("status") == "sent")
        lose(rclient, s, "H1")
        rclient.delete(*rclient.keys(f"{s.redis.key_prefix}verp:*"))
        announce(rclient, s, hold_event("H1", "C1"))
        wait_for(lambda: hold(s, "H1").get("status") == "sent")
    first, again = smtp_sink.messages
    assert decoded(first)["Message-ID"] == decoded(again)["Message-ID"]
    assert first.mail_from != again.mail_from
    rows = {}
    for name, m in (("first", first), ("again", again)):
        f = tmp_path / f"{name}.eml"
        f.write_bytes(f"Delivered-To: {m.mail_from}\r\n".encode()
                      + dsn(m.data, "taro@docomo.ne.jp", "5.1.1", "550 5.1.1 user unknown",
                            mid=f"<{name}@mx>"))
        [rows[name]] = ingest(str(f))
    assert (rows["again"]["traced"], rows["again"]["trust"], rows["again"]["hold_id"]) == (
        "verp", "verified", "H1")
    assert (rows["first"]["traced"], rows["first"]["trust"], rows["first"]["hold_id"]) == (
        "message-id", "unverified", "H1")
    assert rows["again"]["hold_action"] == "phoned" and hold(s, "H1")["status"] == "phoned"
