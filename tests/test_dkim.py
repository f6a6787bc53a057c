"""[dkim]: off by default, a key file refused at start when it is unsafe, `dkim keygen`.

(Signatures verified against real DNS: tests/test_sender_domain.py.)
"""

from __future__ import annotations

import os
import stat

import dkim
import pytest

from tests.helpers import hold_event, variant
from worker.cli.main import main
from worker.cli.ops import check_templates
from worker.errors import ConfigError
from worker.mail.compose import Composer
from worker.mail.dkim import generate_key, public_key_b64, same_public_key, write_private_key


def dkim_on(settings, key_file) -> object:
    return variant(settings, dkim={"domain": "city.omitama.ibaraki.jp", "selector": "lib2026",
                                   "key_file": str(key_file)})


def notice_data(s) -> bytes:
    from worker.ils.events import HoldReady
    import json
    ev = HoldReady.model_validate_json(json.dumps(hold_event()))
    return Composer(s).hold_ready(ev, "taro@example.jp", "tok").data


def test_off_by_default_nothing_is_signed(settings):
    assert not settings.dkim_on
    assert b"DKIM-Signature" not in notice_data(settings)


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "dkim.pem"
    write_private_key(path, generate_key(1024))
    return path


def test_signed_with_our_key_when_on(settings, key_file):
    data = notice_data(dkim_on(settings, key_file))
    pub = public_key_b64(key_file.read_bytes()).encode()
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: b"v=DKIM1; k=rsa; p=" + pub
                       if name == b"lib2026._domainkey.city.omitama.ibaraki.jp." else b"")


@pytest.mark.parametrize("spoil, words", [
    (lambda p: p.unlink(), "does not exist"),
    (lambda p: p.chmod(0o644), "readable by every user of this machine"),
    (lambda p: p.write_text("not a key"), "is not a PEM private key"),
])
def test_an_unsafe_key_file_stops_the_start(settings, key_file, spoil, words):
    spoil(key_file)
    with pytest.raises(ConfigError) as e:
        check_templates(dkim_on(settings, key_file))  # what the worker runs at start
    assert "[dkim] key_file" in str(e.value) and words in str(e.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_key_file_stops_the_start(settings, key_file):
    key_file.chmod(0o000)
    with pytest.raises(ConfigError, match="cannot be read by this user"):
        check_templates(dkim_on(settings, key_file))


def test_a_key_file_needs_domain_and_selector(settings, key_file):
    with pytest.raises(Exception, match="domain and selector are needed"):
        variant(settings, dkim={"key_file": str(key_file)})


def test_keygen_writes_a_private_key_and_prints_the_record(tmp_path, capsys, monkeypatch):
    path = tmp_path / "new.pem"
    args = ["dkim", "keygen", "--key-file", str(path), "--domain", "city.omitama.ibaraki.jp",
            "--selector", "lib2026", "--bits", "1024"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = out.split("lib2026._domainkey.city.omitama.ibaraki.jp. IN TXT ", 1)[1]
    p = "".join(s.strip('"') for s in record.strip(" ()\n").split('" "')).split("p=", 1)[1]
    assert same_public_key(p, path.read_bytes())
    # never over a key in use
    before = path.read_bytes()
    assert main(args) == 2
    assert "exists already" in capsys.readouterr().err and path.read_bytes() == before


def test_openssl_signs_the_same_bytes_as_dkimpy_alone(settings, key_file):
    """The RSA step is OpenSSL's (13 ms → well under 1 ms a mail); the signature must be
    byte for byte what dkimpy's own pure-Python RSA gives."""
    import worker.mail.dkim as ours

    s = dkim_on(settings, key_file)
    data = notice_data(s)
    body = data.split(b"\r\n", 1)[1] if data.startswith(b"DKIM-Signature") else data
    unsigned = data[data.index(b"\r\nFrom: ") + 2:] if b"\r\nFrom: " in data else body
    sig = lambda d: d.split(b"\r\nFrom: ", 1)[0].split(b" t=", 1)[1].split(b";", 1)[1]
    t = lambda d: d.split(b" t=", 1)[1].split(b";", 1)[0]
    for _ in range(5):  # the signature covers t= (seconds): both must sign in one second
        fast = ours.Signer("city.omitama.ibaraki.jp", "lib2026", key_file.read_bytes()).sign(unsigned)
        dkim.RSASSA_PKCS1_v1_5_sign = ours._pure_rsa_sign
        try:
            slow = ours.Signer("city.omitama.ibaraki.jp", "lib2026",
                               key_file.read_bytes()).sign(unsigned)
        finally:
            dkim.RSASSA_PKCS1_v1_5_sign = ours._rsa_sign
        if t(fast) == t(slow):
            break
    assert t(fast) == t(slow) and sig(fast) == sig(slow)


# -- what DNS may hold is anybody's text: the judgements never fail on it -----------------

from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

from worker.mail.domaincheck import dkim_lines, dmarc_lines, spf_lines  # noqa: E402

TXT = st.text(max_size=300) | st.sampled_from(
    ["v=spf1", "v=spf1 +all", "v=spf1 all", "v=spf1 ?all -all", "v=DKIM1; p=", "p=!!!",
     "v=DMARC1; p=reject; adkim=s", "v=DMARC1;;;=;p", "v=spf1 ip4:1.2.3.4 ~all"])
PEM = generate_key(1024)


@hsettings(max_examples=150, deadline=None)
@given(st.lists(TXT, max_size=4), st.dictionaries(st.sampled_from(["127.0.0.1", "192.0.2.1"]),
                                                  st.sampled_from(["pass", "fail", "neutral"])))
def test_any_record_text_gives_lines_not_errors(txts, results):
    for line in (spf_lines("city.test", txts, list(results), results)
                 + dkim_lines("city.test", "sel", txts, PEM, "record")
                 + dmarc_lines("city.test", ("city.test", txts[0]) if txts else None,
                               "city.test", False, "city.test", False)):
        assert line.topic and line.said and line.text()
        if line.ok is False:
            assert line.ask  # every fault says what to ask for
