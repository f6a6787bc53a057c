"""A digest mailed as planned reads as one in the log (issue 23, item 7): no "lost" in the
minute summary, no dramatiq "Retrying message … in 4998 milliseconds" at INFO, and the
waiting hold says it is gathered for a digest. Real worker, Redis and SMTP server."""

from __future__ import annotations

import logging

from tests.helpers import hold_event, run_worker, set_contact, variant, wait_for, with_store
from worker.contact import ContactState


def test_a_digest_of_two_holds_logs_sent_and_gathered_never_lost(settings, clean_redis,
                                                                 smtp_sink, caplog):
    # a short lease: a sibling's message that comes back while the digest is being sent
    # is "busy" and looks again when the digest's lease would end (120 s by default)
    s = variant(settings, mail={"transport": "smtp"}, smtp={"port": smtp_sink.port},
                digest={"gather_s": 1.5}, delivery={"lease_s": 4})
    with_store(s, lambda st: set_contact(st, "C-D", ContactState.ACTIVE, address="d@example.jp"))
    from worker.queue import activity
    from worker.queue.actors import hold_ready
    activity.take()
    caplog.set_level(logging.INFO)
    with run_worker(s):
        hold_ready.send(hold_event("HD-1", "C-D"))
        hold_ready.send(hold_event("HD-2", "C-D"))
        try:
            wait_for(lambda: all(with_store(s, lambda st, h=h: st.get_hold(h)).get("status")
                                 == "sent" for h in ("HD-1", "HD-2")), timeout=60)
        except AssertionError:
            holds = [with_store(s, lambda st, h=h: st.get_hold(h)) for h in ("HD-1", "HD-2")]
            raise AssertionError(f"holds {holds}; counts {activity.take()}; "
                                 f"mails {len(smtp_sink.messages)}") from None
        ns = s.redis.namespace
        from worker.queue.actors import broker
        wait_for(lambda: broker.client.hlen(f"{ns}:notifications.msgs") == 0
                 and broker.client.hlen(f"{ns}:notifications.DQ.msgs") == 0, timeout=30)
    counts = activity.take()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    report = f"counts {counts}; INFO lines {lines}"
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["d@example.jp"]], report
    assert counts.get("sent") == 1 and counts.get("gathering") == 2, report
    assert "lost" not in counts and "duplicate" not in counts, report
    assert counts.get("gathered") == 1, report  # the other hold's own message, done
    assert not [x for x in lines if "Retrying message" in x or "duplicate ignored" in x], report
    assert any("gathered for a digest" in x for x in lines), report
