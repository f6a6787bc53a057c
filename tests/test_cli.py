"""The command line, run as a newcomer or staff would run it (real processes, real Redis)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import hold_event, run_worker, wait_for, with_store

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    return subprocess.run([sys.executable, "-m", "worker.cli.main", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("env,words", [
    ({"OMITAMA_NOTIFY_SMTP__PORT": "twenty-five"}, "setting [smtp] port: Input should be a valid integer"),
    ({"OMITAMA_NOTIFY_SMTP__PORT": "70000"}, "setting [smtp] port: Input should be less than or equal to 65535"),
    ({"OMITAMA_NOTIFY_MAIL__TRANSPORT": "fax"}, "setting [mail] transport: Input should be 'smtp' or 'outbox'"),
    ({"OMITAMA_NOTIFY_MAIL__CHARSET": "shift_jis"}, "setting [mail] charset"),
    ({"OMITAMA_NOTIFY_SMTP__PROT": "25"}, "setting [smtp] prot: is not a known setting (from OMITAMA_NOTIFY_SMTP__PROT)"),
    ({"OMITAMA_NOTIFY_REDIS__URL": "http://x"}, "setting [redis] url: Value error, must start with redis://"),
    ({"OMITAMA_NOTIFY_MAIL__FROM_ADDRESS": "lib@x.jp\r\nBcc: y@z.jp"}, "setting [mail] from_address"),
    ({"OMITAMA_NOTIFY_WORKER__THREADS": "0"}, "setting [worker] threads"),
    ({"OMITAMA_NOTIFY_SETTINGS": "/nonexistent.toml"}, "settings file not found"),
    ({"OMITAMA_NOTIFY_BRANCHES__OGAWA__PHONE": "[1]"}, None),  # a string is fine
])
def test_bad_settings_stop_with_one_line_naming_the_key(env, words):
    r = cli("review", "calls", env=env)
    if words is None:
        assert r.returncode == 0, r.stderr
        return
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr


def test_worker_does_not_start_with_templates_that_do_not_render(tmp_path):
    missing = cli("worker", env={"OMITAMA_NOTIFY_MAIL__TEMPLATES_DIR": str(tmp_path / "none")})
    assert missing.returncode == 2 and "[mail] templates_dir" in missing.stderr, missing.stderr
    assert "cannot load templates" in missing.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in (ROOT / "templates" / "mail").iterdir():
        (broken / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    body = broken / "hold_ready.body.j2"
    body.write_text(body.read_text(encoding="utf-8") + "{{ no_such_field }}\n", encoding="utf-8")
    r = cli("worker", env={"OMITAMA_NOTIFY_MAIL__TEMPLATES_DIR": str(broken)})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "does not render" in lines[0] and "no_such_field" in lines[0]


def test_settings_missing_a_branch_field(tmp_path):
    bad = tmp_path / "s.toml"
    bad.write_text('[branches.ogawa]\nname = "小川図書館"\naddress = "x"\n', encoding="utf-8")
    r = cli("review", "calls", env={"OMITAMA_NOTIFY_SETTINGS": str(bad)})
    assert r.returncode == 2 and "setting [branches.ogawa] phone: is missing" in r.stderr


def test_enqueue_refuses_invalid_and_enqueues_valid(clean_redis, settings):
    lines = [json.dumps(hold_event("H-1")), json.dumps(hold_event("H-2", pickup_branch="mito")),
             "not json", "", json.dumps([1])]
    r = cli("enqueue", "-", stdin="\n".join(lines))
    assert r.returncode == 1
    assert "-:2: refused: pickup_branch: unknown branch 'mito'" in r.stderr
    assert "-:3: refused: not valid JSON" in r.stderr
    assert "-:5: refused: an event must be a JSON object, not list" in r.stderr
    assert r.stdout.strip() == "enqueued 1, refused 3"
    ns = settings.redis.namespace
    [rid] = clean_redis.lrange(f"{ns}:notifications", 0, -1)
    msg = json.loads(clean_redis.hget(f"{ns}:notifications.msgs", rid))
    assert msg["actor_name"] == "hold_ready" and msg["args"][0]["hold_id"] == "H-1"
    rows = [json.loads(x) for x in cli("review", "rejected", "--json").stdout.splitlines()]
    assert {row["source"] for row in rows} == {"enqueue"} and len(rows) == 3
    assert {row["kind"] for row in rows} == {"invalid_event"}
    assert any(row["event_id"] == "ev-H-2" and "mito" in row["error"] for row in rows)


def test_enqueue_lists_a_refused_hold_ready_for_a_phone_call(clean_redis, settings):
    """As in the worker: refused (exit 1, kept) and, naming its hold, on the call list."""
    bad = hold_event("H-3", "C-3", pickup_by="next friday")
    unusable = hold_event("H 4", "C-4", item={"title": "x", "material": "dvd"})
    r = cli("enqueue", "-", stdin=json.dumps(bad) + "\n" + json.dumps(unusable))
    assert r.returncode == 1 and r.stdout.strip() == "enqueued 0, refused 2"
    assert "-:1: refused: pickup_by" in r.stderr
    assert "-:1: the hold it names is on the phone-call list instead (invalid_event)" in r.stderr
    assert "-:2: the hold" not in r.stderr  # "H 4" is no hold id: refused only
    calls = [json.loads(x) for x in cli("review", "calls", "--json").stdout.splitlines()]
    assert [(c["hold_id"], c["reason"], c["pickup_by"]) for c in calls] == [("H-3", "invalid_event", "")]
    assert cli("review", "calls").stdout.startswith("-  ogawa  H-3  C-3  予約連携データに不備")
    # sent again: refused again, listed once
    again = cli("enqueue", "-", stdin=json.dumps(bad))
    assert again.returncode == 1 and "phone-call list" not in again.stderr
    assert len(cli("review", "calls", "--json").stdout.splitlines()) == 1


def test_enqueue_with_redis_away_says_so_in_one_line_and_enqueues_nothing():
    r = cli("enqueue", "-", stdin=json.dumps(hold_event("H-8")),
            env={"OMITAMA_NOTIFY_REDIS__URL": "redis://:hunter2@127.0.0.1:1/0"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in lines[0]
    assert "nothing was enqueued" in lines[0] and "hunter2" not in r.stderr


def test_enqueue_single_document_and_exit_zero(clean_redis, tmp_path):
    f = tmp_path / "one.json"
    f.write_text(json.dumps(hold_event("H-9"), indent=2, ensure_ascii=False), encoding="utf-8")
    r = cli("enqueue", str(f))
    assert r.returncode == 0 and r.stdout.strip() == "enqueued 1, refused 0"


def test_enqueue_empty_input_is_not_success(clean_redis):
    r = cli("enqueue", "-", stdin="\n\n")
    assert r.returncode == 1 and "enqueued 0, refused 0" in r.stdout


def test_review_calls_and_called(clean_redis, settings):
    with run_worker(settings):
        from worker.queue.actors import hold_ready
        hold_ready.send(hold_event("H-1", "C-1", contact="phone", pickup_branch="minori"))
        hold_ready.send(hold_event("H-2", "C-2", contact="phone", pickup_branch="ogawa",
                                   pickup_by="2099-12-01"))
        wait_for(lambda: len(with_store(settings, lambda s: s.calls())) == 2)
    rows = [json.loads(x) for x in cli("review", "calls", "--json").stdout.splitlines()]
    assert [r["hold_id"] for r in rows] == ["H-2", "H-1"]  # earliest deadline first
    assert set(rows[0]) >= {"hold_id", "card_number", "pickup_branch", "pickup_by", "reason"}
    assert rows[0]["reason"] == "chose_phone"
    minori = cli("review", "calls", "--branch", "minori", "--json").stdout.splitlines()
    assert [json.loads(x)["hold_id"] for x in minori] == ["H-1"]
    assert "unknown branch 'mito'" in cli("review", "calls", "--branch", "mito").stderr
    r = cli("review", "called", "H-1", "--staff", "S07", "--note", "留守電に伝言")
    assert r.returncode == 0, r.stderr
    again = cli("review", "called", "H-1", "--staff", "S07")
    # a repeat (issue 19: every staff action is safe to repeat): done already, exit 0
    assert again.returncode == 0 and "marked called already" in again.stdout, again.stderr
    history = [json.loads(x) for x in cli("review", "history", "C-1", "--json").stdout.splitlines()]
    assert history[-1]["staff"] == "S07" and history[-1]["why"] == "留守電に伝言"
    assert cli("review", "called", "H-2", "--staff", "").returncode == 2


def test_redis_unreachable_is_one_clear_line():
    r = cli("review", "calls", env={"OMITAMA_NOTIFY_REDIS__URL": "redis://127.0.0.1:1/0"})
    assert r.returncode == 1
    assert r.stderr.strip().startswith("omitama-notify: cannot reach Redis at redis://127.0.0.1:1/0")
    assert len(r.stderr.strip().splitlines()) == 1
    # and how to get one, not only the connection error
    assert "start_private = true" in r.stderr and "OMITAMA_NOTIFY_REDIS__URL" in r.stderr


def test_review_pending_approve_reject_through_the_cli(clean_redis, settings, tmp_path):
    import email
    import email.policy
    import re

    from tests.helpers import variant
    s = variant(settings, mail={"outbox_dir": tmp_path / "out"})
    from worker.queue.actors import address_registered
    with run_worker(s):
        for card, addr, branch in [("C1", "taro@docomo.ne.jp", "ogawa"),
                                   ("C2", "hana@ezweb.ne.jp", "tamari")]:
            address_registered.send({"event_id": f"r-{card}", "type": "address_registered",
                                     "card_number": card, "email": addr,
                                     "registered_at": "2026-11-29T09:30:00+09:00",
                                     "application_branch": branch})
        files = wait_for(lambda: len(list((tmp_path / "out").glob("*.eml"))) == 2
                         and sorted((tmp_path / "out").glob("*.eml")))
    rows = [json.loads(x) for x in cli("review", "pending", "--json").stdout.splitlines()]
    assert [r["card_number"] for r in rows] == ["C1", "C2"]
    assert set(rows[0]) >= {"card_number", "email", "application_branch", "registered_at"}
    assert rows[0]["registered_at"] == "2026-11-29T09:30:00+09:00"
    tamari = cli("review", "pending", "--branch", "tamari").stdout
    assert "card C2" in tamari and "card C1" not in tamari and "read on the call:" in tamari
    codes = {}
    for f in files:
        msg = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
        codes[msg["To"].addresses[0].addr_spec] = re.search(r"^(\d{6})$", msg.get_content(), re.M)[1]
    code = codes["taro@docomo.ne.jp"]
    wrong = "000000" if code != "000000" else "111111"
    r = cli("review", "approve", "C1", "--staff", "S01", "--code", wrong)
    assert r.returncode == 1 and "4 tries left" in r.stderr
    r = cli("review", "approve", "C1", "--staff", "S01")
    assert r.returncode == 1 and "give --code NNNNNN" in r.stderr
    r = cli("review", "approve", "C1", "--staff", "S01", "--code", "12345")
    assert r.returncode == 1 and "six digits" in r.stderr
    full_width = code.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    r = cli("review", "approve", "C1", "--staff", "S01", "--code", full_width)
    assert r.returncode == 0 and "approved by S01" in r.stdout, r.stderr
    r = cli("review", "approve", "C2", "--staff", "S02", "--without-code")
    assert r.returncode == 1 and "needs --reason" in r.stderr
    # DESIGN's form without --address still works (on the registration pending now); the
    # page and scripts that name what they saw get the stale check below
    r = cli("review", "approve", "NOPE", "--staff", "S02", "--without-code", "--reason", "来館")
    assert r.returncode == 1 and "no registration is waiting" in r.stderr, r.stderr
    # a registration the staff member was not shown is neither approved nor rejected
    for action in (("approve", "--without-code"), ("reject",)):
        r = cli("review", *action, "C2", "--staff", "S02", "--reason", "来館",
                "--address", "taro@docomo.ne.jp")
        assert r.returncode == 1 and "registered another address" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    r = cli("review", "reject", "C2", "--staff", "S02", "--reason", "本人と連絡がつかない",
            "--address", "Hana@ezweb.ne.jp")
    assert r.returncode == 0 and "back to none" in r.stdout, r.stderr
    assert cli("review", "pending", "--json").stdout == ""
    hist = [json.loads(x) for x in cli("review", "history", "C2", "--json").stdout.splitlines()]
    assert hist[-1]["what"] == "registration rejected" and hist[-1]["staff"] == "S02"
    assert hist[-1]["why"] == "本人と連絡がつかない" and hist[-1]["state"] == "none"


def cli_bytes(*args: str, stdin: bytes):
    return subprocess.run([sys.executable, "-m", "worker.cli.main", *args], input=stdin,
                          capture_output=True, cwd=ROOT, timeout=120)


def test_enqueue_refuses_only_the_lines_that_are_not_utf8_and_enqueues_the_rest(clean_redis, settings, tmp_path):
    """Issue 14 #6: one bad byte among many lines, and a binary file, are refused line by
    line (naming each), never with a traceback; every other line is enqueued."""
    good = [json.dumps(hold_event(f"H-{i}"), ensure_ascii=False).encode() for i in range(2000)]
    data = b"\n".join(good[:1000] + [b'{"event_id": "x\xff\xfe"}'] + good[1000:]) + b"\n"
    f = tmp_path / "events.jsonl"
    f.write_bytes(data)
    r = cli_bytes("enqueue", str(f), stdin=b"")
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err, err
    assert err.splitlines() == [f"{f}:1001: refused: not UTF-8 text (byte 0xff at column 16); "
                                "send events as UTF-8"]
    assert r.stdout.decode().strip() == "enqueued 2000, refused 1"
    assert clean_redis.llen(f"{settings.redis.namespace}:notifications") == 2000

    binary = bytes(range(256)) * 8
    b = cli_bytes("enqueue", "-", stdin=binary)
    lines = b.stderr.decode().splitlines()
    assert b.returncode == 1 and "Traceback" not in b.stderr.decode()
    assert lines and all(": refused: not " in line for line in lines), lines
    assert b.stdout.decode().strip() == f"enqueued 0, refused {len(lines)}"


@pytest.mark.parametrize("data", [b"", b"\n \n", b"\xef\xbb\xbf"])
def test_enqueue_says_an_empty_input_is_empty(clean_redis, data):
    r = cli_bytes("enqueue", "-", stdin=data)
    assert r.returncode == 1 and "-: the input is empty; no event to enqueue" in r.stderr.decode()


def test_enqueue_accepts_a_leading_bom(clean_redis):
    r = cli_bytes("enqueue", "-", stdin=b"\xef\xbb\xbf" + json.dumps(hold_event("H-1")).encode())
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == "enqueued 1, refused 0"


def test_enqueue_refuses_a_lone_surrogate_and_goes_on(clean_redis, settings):
    """Issue 14 #2: "\\ud800" in a name is refused by itself (one line, no traceback), the
    hold it names is listed for a call, and the next line is enqueued."""
    bad = json.dumps(hold_event("H-1", "C-1", patron_name="\ud800x"))  # written as \ud800
    r = cli("enqueue", "-", stdin=bad + "\n" + json.dumps(hold_event("H-2")))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert ("-:1: refused: patron_name: contains a lone surrogate (U+D800) at position 0"
            in r.stderr)
    assert "-:1: the hold it names is on the phone-call list instead" in r.stderr
    assert r.stdout.strip() == "enqueued 1, refused 1"
    calls = [json.loads(x) for x in cli("review", "calls", "--json").stdout.splitlines()]
    assert [(c["hold_id"], c["reason"]) for c in calls] == [("H-1", "invalid_event")]
    [row] = [json.loads(x) for x in cli("review", "rejected", "--json").stdout.splitlines()]
    assert row["event_id"] == "ev-H-1" and "\\ud800" in row["raw"]


@pytest.mark.parametrize("email,words", [
    ("not-an-address", "has no @"),
    ("taro@docomo.ne.jp\r\nBcc: evil@example.com", "line break"),
])
def test_enqueue_refuses_an_address_the_worker_would_refuse(clean_redis, settings, email, words):
    """Issue 14 #10: the same check as the worker (worker.contact.addresses.normalise_address,
    no DNS), so the integrator sees the refusal where the event is produced."""
    ev = {"event_id": "reg-1", "type": "address_registered", "card_number": "C1",
          "email": email, "registered_at": "2026-11-29T10:00:00+09:00",
          "application_branch": "minori"}
    ok = {**ev, "event_id": "reg-2", "email": "taro@docomo.ne.jp"}
    r = cli("enqueue", "-", stdin=json.dumps(ev) + "\n" + json.dumps(ok))
    assert r.returncode == 1 and r.stdout.strip() == "enqueued 1, refused 1", r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("-:1: refused: email: ") and words in line
    [rid] = clean_redis.lrange(f"{settings.redis.namespace}:notifications", 0, -1)
    msg = json.loads(clean_redis.hget(f"{settings.redis.namespace}:notifications.msgs", rid))
    assert msg["args"][0]["event_id"] == "reg-2"
    [row] = [json.loads(x) for x in cli("review", "rejected", "--json").stdout.splitlines()]
    assert (row["event_id"], row["kind"]) == ("reg-1", "refused_address")


@pytest.mark.parametrize("as_json", [False, True])
def test_bounces_classify_fails_on_a_file_it_cannot_read(tmp_path, as_json):
    good = tmp_path / "ordinary.eml"
    good.write_bytes(b"From: a@example.jp\r\nSubject: hi\r\n\r\nhello\r\n")
    missing = tmp_path / "missing.eml"
    args = ["bounces", "classify", str(missing), str(tmp_path), str(good)]
    r = cli(*args, *(["--json"] if as_json else []))
    assert r.returncode == 1, r.stdout
    # one line per file it could not read (a missing file, a directory), naming it
    errors = r.stderr.splitlines()
    assert len(errors) == 2 and str(missing) in errors[0] and "No such file" in errors[0]
    assert "Is a directory" in errors[1]
    # and the readable file is still classified
    assert str(good) in r.stdout
    ok = cli("bounces", "classify", str(good))
    assert ok.returncode == 0 and ok.stderr == ""


def _all_parsers(parser, path=()):
    import argparse
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                assert helps.get(name), f"{' '.join((*path, name))}: the command has no help line"
                yield from _all_parsers(child, (*path, name))


def test_every_option_of_every_command_has_help_without_markup():
    import argparse

    from worker.cli.main import build_parser
    seen = 0
    for path, parser in _all_parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            seen += 1
            name = "/".join(action.option_strings) or action.dest
            assert action.help and action.help != argparse.SUPPRESS, \
                f"omitama-notify {' '.join(path)}: {name} has no help"
        text = parser.format_help()
        for markup in ("``", "`", ":func:", ":mod:", "**", "<b>", "\x1b["):
            assert markup not in text, f"omitama-notify {' '.join(path)} --help shows {markup!r}"
        if path:  # each command's --help opens with what it does
            assert parser.description, f"omitama-notify {' '.join(path)} --help has no description"
    assert seen > 30  # the walk reached the subcommands


def test_help_runs_for_every_command():
    r = cli("review", "approve", "--help")
    assert r.returncode == 0 and "approve a pending address" in r.stdout
    assert "--without-code" in r.stdout and "counter" in r.stdout
