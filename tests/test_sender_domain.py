"""Our sending domain against a real authoritative DNS server (NSD on loopback).

One NSD serves throw-away zones: a well-configured domain and one broken variant per
fault. ``check domain`` must name each fault in words, and every mail the worker sends
with ``[dkim]`` on must verify (dkimpy) with the key that server publishes.
"""

from __future__ import annotations

import asyncio
import json

import dkim
import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests import dnsd
from tests.helpers import daemon_dir, hold_event, run_worker, set_contact, variant, wait_for
from tests.helpers import with_store
from worker.contact import ContactState
from worker.ils.events import HoldReady
from worker.mail.compose import Composer
from worker.mail.dkim import generate_key, txt_record, write_private_key
from worker.mail.domaincheck import check_domain
from worker.mail.transport import make_transport

RELAY = "127.0.0.1"
GOOD_SPF = f'@ IN TXT "v=spf1 ip4:{RELAY} -all"'
MX = ["@ IN MX 10 mx", f"mx IN A {RELAY}"]

pytestmark = pytest.mark.skipif(dnsd.available() is not None, reason=str(dnsd.available()))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dkim")
    ours, stale = generate_key(1024), generate_key(1024)
    write_private_key(folder / "ours.pem", ours)
    return {"ours": ours, "stale": stale, "file": folder / "ours.pem"}


@pytest.fixture(scope="module")
def nsd(keys):
    def key_of(domain: str, pem: bytes) -> str:
        return txt_record(domain, "sel", pem)
    zones = {
        "good.test": [GOOD_SPF, key_of("good.test", keys["ours"]),
                      '_dmarc IN TXT "v=DMARC1; p=reject; adkim=r"', *MX],
        "nospf.test": [key_of("nospf.test", keys["ours"]), '_dmarc IN TXT "v=DMARC1; p=none"', *MX],
        "notrelay.test": ['@ IN TXT "v=spf1 ip4:192.0.2.10 -all"',
                          key_of("notrelay.test", keys["ours"]), '_dmarc IN TXT "v=DMARC1; p=none"', *MX],
        "plusall.test": ['@ IN TXT "v=spf1 +all"', key_of("plusall.test", keys["ours"]),
                         '_dmarc IN TXT "v=DMARC1; p=none"', *MX],
        # From here, signatures and return path at good.test: nothing aligns
        "noalign.test": [GOOD_SPF, '_dmarc IN TXT "v=DMARC1; p=reject"', *MX],
        "stalekey.test": [GOOD_SPF, key_of("stalekey.test", keys["stale"]),
                          '_dmarc IN TXT "v=DMARC1; p=none"', *MX],
        "nomx.test": [GOOD_SPF, key_of("nomx.test", keys["ours"]), '_dmarc IN TXT "v=DMARC1; p=none"'],
    }
    with daemon_dir("nsd") as folder:
        server = dnsd.Nsd(folder, zones).start()
        try:
            yield server
        finally:
            server.stop()


def domain_settings(settings, nsd, keys, domain: str, *, dkim_domain: str | None = None,
                    return_path: str | None = None):
    return variant(settings,
                   mail={"from_address": f"lib@{domain}",
                         "return_path": return_path or f"bounce+{{token}}@{domain}"},
                   dkim={"domain": dkim_domain or domain, "selector": "sel",
                         "key_file": str(keys["file"])},
                   domain_check={"resolver": "127.0.0.1", "resolver_port": nsd.port,
                                 "relay_addresses": [RELAY], "timeout_s": 3})


def faults(lines) -> list[str]:
    return [line.text() for line in lines if line.ok is False]


def test_a_well_configured_domain_passes(settings, nsd, keys):
    lines = check_domain(domain_settings(settings, nsd, keys, "good.test"))
    assert faults(lines) == [], [line.text() for line in lines]
    said = "\n".join(line.text() for line in lines)
    assert "authorises the relay" in said and "matches our [dkim] key_file" in said
    assert "p=reject" in said and "aligns with DKIM d=good.test" in said
    assert "bounces come back via mx.good.test" in said


@pytest.mark.parametrize("domain, topic, words, ask", [
    ("nospf.test", "SPF nospf.test", "no SPF record", '"v=spf1 ip4:127.0.0.1 -all"'),
    ("notrelay.test", "SPF notrelay.test", "the relay is not authorised", "add ip4:127.0.0.1"),
    ("plusall.test", "SPF plusall.test", "ends in +all", 'by "-all"'),
    ("stalekey.test", "DKIM sel._domainkey.stalekey.test", "not the public half of our",
     "replace the TXT record"),
    ("nomx.test", "MX nomx.test", "no mail server (MX)", "an MX record for nomx.test"),
])
def test_each_broken_variant_is_named(settings, nsd, keys, domain, topic, words, ask):
    found = faults(check_domain(domain_settings(settings, nsd, keys, domain)))
    assert len(found) == 1, found
    assert found[0].startswith(f"FAIL  {topic}: ") and words in found[0], found
    assert "ask the DNS administrator: " in found[0] and ask in found[0]


def test_dmarc_reject_without_alignment_is_named(settings, nsd, keys):
    s = domain_settings(settings, nsd, keys, "noalign.test", dkim_domain="good.test",
                        return_path="bounce+{token}@good.test")
    found = faults(check_domain(s))
    assert len(found) == 1, found
    assert found[0].startswith("FAIL  DMARC noalign.test: p=reject but From aligns with neither")
    assert "DKIM d=good.test is not noalign.test" in found[0]
    assert "the return path good.test is not noalign.test" in found[0]
    assert "receivers refuse every mail" in found[0]


def test_check_domain_command_says_it_and_fails(settings, nsd, keys, capsys):
    import argparse

    from worker.cli.ops import cmd_check
    code = cmd_check(argparse.Namespace(what="domain"),
                     domain_settings(settings, nsd, keys, "plusall.test"))
    out = capsys.readouterr().out
    assert code == 1 and "asking 127.0.0.1" in out and "FAIL  SPF plusall.test" in out
    assert cmd_check(argparse.Namespace(what="domain"),
                     domain_settings(settings, nsd, keys, "good.test")) == 0


# -- signed mails verify with the key the server publishes ----------------------------------

def dnsfunc_at(port: int):
    """dkimpy's dnsfunc, answered by the test server (dnspython, no system resolver)."""
    def lookup(name: bytes, timeout: int = 5) -> bytes:
        q = dns.message.make_query(name.decode(), dns.rdatatype.TXT)
        answer = dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)
        for rrset in answer.answer:
            for r in rrset:
                return b"".join(r.strings)
        return b""
    return lookup


def verifies(data: bytes, port: int) -> bool:
    return bool(dkim.verify(data, dnsfunc=dnsfunc_at(port)))


def event(hold_id: str) -> HoldReady:
    return HoldReady.model_validate_json(json.dumps(hold_event(hold_id, "C-9")))


def test_every_kind_of_mail_is_signed_and_verifies(settings, nsd, keys, smtp_sink, outbox):
    s = variant(domain_settings(settings, nsd, keys, "good.test"), mail={"transport": "smtp"},
                smtp={"port": smtp_sink.port, "timeout": 5})
    composer = Composer(s)
    first, second = event("H-1"), event("H-2")
    notices = [
        composer.hold_ready(first, "taro@example.jp", "t1"),
        composer.hold_ready_digest([first, second], "taro@example.jp", "t2"),
        composer.reminder([first], "taro@example.jp", "t3"),
        composer.confirmation("taro@example.jp", "123456", first.pickup_branch, "docomo",
                              "12月5日(土)", "t4"),
    ]

    async def send_all() -> None:
        transport = make_transport(s)
        try:
            for n in notices:
                await transport.send(n)
        finally:
            await transport.close()
    asyncio.run(send_all())
    caught = smtp_sink.messages
    assert len(caught) == 4
    for m in caught:
        head = m.data.split(b"\r\n\r\n", 1)[0]
        assert head.startswith(b"DKIM-Signature: ") and b"d=good.test" in head
        assert verifies(m.data, nsd.port), m.data[:400]
    # the stale key's domain: the same mail does not verify against what DNS publishes
    stale = variant(s, dkim={"domain": "stalekey.test", "selector": "sel",
                             "key_file": str(keys["file"])})
    assert not verifies(Composer(stale).hold_ready(first, "taro@example.jp", "t5").data, nsd.port)


def test_the_headers_a_receiver_checks_are_signed(settings, nsd, keys):
    data = Composer(domain_settings(settings, nsd, keys, "good.test")).hold_ready(
        event("H-1"), "taro@example.jp", "t1").data
    sig = data.split(b"\r\n\r\n", 1)[0].decode().split("DKIM-Signature:", 1)[1]
    h = "".join(sig.split("h=", 1)[1].split(";", 1)[0].split()).lower().split(":")
    for name in ("from", "to", "subject", "date", "message-id", "mime-version",
                 "content-type", "auto-submitted"):
        assert name in h
    # a changed subject no longer verifies: the signature covers it
    tampered = data.replace(b"Subject: ", b"Subject: X", 1)
    assert verifies(data, nsd.port) and not verifies(tampered, nsd.port)


def test_a_hold_notice_from_the_worker_verifies(settings, nsd, keys, smtp_sink, clean_redis):
    s = variant(domain_settings(settings, nsd, keys, "good.test"), mail={"transport": "smtp"},
                smtp={"port": smtp_sink.port, "pool_size": 1, "timeout": 5},
                delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": 5})

    async def active(store):
        await set_contact(store, "C-1", ContactState.ACTIVE, address="taro@example.jp",
                          staff="S01", why="test")
    with_store(s, active)
    from worker.queue.actors import hold_ready
    with run_worker(s):
        hold_ready.send(hold_event("H-1", "C-1"))
        wait_for(lambda: len(smtp_sink.messages) == 1)
    assert verifies(smtp_sink.messages[0].data, nsd.port)
