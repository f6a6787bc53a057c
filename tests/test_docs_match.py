"""What a newcomer reads matches what happens (issue 23, item 7): the settings that exist,
the shipped file and docs/operations.md name the same keys; `check` prints what the
operations guide shows; docs/ils-integration.md lists every field of `review calls --json`."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from tests.helpers import hold_event, with_store
from tests.test_operations import cli
from worker.settings import Branch, Settings

ROOT = Path(__file__).resolve().parents[1]
NOT_SECTIONS = {"branches", "base_dir", "config_dir", "source"}
MOVED = {("delivery", "retention_days")}  # refused with a pointer to its new place


def _model_keys() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name, field in Settings.model_fields.items():
        if name not in NOT_SECTIONS:
            model: Any = field.annotation
            out[name] = {k for k in model.model_fields if (name, k) not in MOVED}
    out["branches.<code>"] = set(Branch.model_fields)
    return out


def test_settings_toml_lists_every_key_and_no_other() -> None:
    text = (ROOT / "settings.toml").read_text("utf-8")
    shipped = tomllib.loads(text)
    for section, keys in _model_keys().items():
        if section == "branches.<code>":
            for code, branch in shipped["branches"].items():
                assert set(branch) <= keys, f"[branches.{code}]: {set(branch) - keys}"
            continue
        body = re.search(rf"^\[{section}\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
        assert body, f"[{section}] missing from settings.toml"
        # a secret is named in a comment ("# password: set OMITAMA_…"), never given a value
        named = set(shipped.get(section, {})) | set(re.findall(r"^# ([a-z_]+):", body[1], re.M))
        assert named == keys, (f"[{section}]: not in settings.toml {keys - named}, "
                               f"unknown {named - keys}")


def test_operations_guide_lists_every_key() -> None:
    doc = (ROOT / "docs/operations.md").read_text("utf-8")
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `\[([a-z_.<>]+)\]` \| (.*) \|$", doc, re.M)}
    for section, keys in _model_keys().items():
        listed = set(re.findall(r"`([a-z_]+)`", rows.get(section, "")))
        assert keys <= listed, f"[{section}] in docs/operations.md lacks {keys - listed}"
    assert set(rows) == set(_model_keys()), set(rows) ^ set(_model_keys())


def _shape(line: str) -> str:
    """A line of `check` with what differs between machines (paths, numbers) blanked."""
    line = re.sub(r"\(shipped defaults; data in [^)]*\)", "(shipped defaults)", line)
    line = re.sub(r"(/[\w.+-]+)+/?", "PATH", line)
    return re.sub(r"\d+(\.\d+)*", "N", line)


def test_the_check_output_in_the_operations_guide_is_what_check_prints(clean_redis, tmp_path):
    doc = (ROOT / "docs/operations.md").read_text("utf-8")
    block = re.search(r"run from `/tmp/first-try` on a machine with Redis 7:\n\n```\n(.*?)```",
                      doc, re.S)
    assert block, "the example of check's output is gone from docs/operations.md"
    r = cli("check", env={"OMITAMA_NOTIFY_MAIL__OUTBOX_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert ([_shape(x) for x in block[1].splitlines()]
            == [_shape(x) for x in r.stdout.splitlines()]), (block[1], r.stdout)


def test_ils_guide_lists_every_field_of_review_calls_json(clean_redis, settings) -> None:
    from worker.app.intake import accept
    from worker.runtime import Runtime

    async def listed(store: Any) -> None:  # a hold on the list, as a phone-choosing patron's
        from worker.app import holds
        rt = Runtime.create(settings)
        try:
            ev = await accept(rt, hold_event("HJ-1", "CJ-1", contact="phone",
                                             patron_phone="0299-00-0000"), "hold_ready",
                              key=lambda: None)
            await holds.notify_hold_ready(rt, ev)
        finally:
            await rt.close()
    with_store(settings, listed)
    r = cli("review", "calls", "--json")
    [row] = [json.loads(x) for x in r.stdout.splitlines()]
    doc = (ROOT / "docs/ils-integration.md").read_text("utf-8")
    table = doc.split("`review calls --json` gives one object per hold")[1].split("\n\n")[1]
    documented = re.findall(r"^\| `([a-z_]+)` \|", table, re.M)
    assert documented == list(row), (documented, list(row))


def test_the_readme_call_list_is_what_review_calls_prints(clean_redis, settings) -> None:
    from tests.helpers import run_worker, wait_for

    readme = (ROOT / "README.md").read_text("utf-8")
    block = readme.split("`./run review calls` prints the two holds")[1].split("```")[1]
    shown = block.strip().splitlines()
    with run_worker(settings):
        r = cli("enqueue", "examples/events.jsonl")
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: len(cli("review", "calls").stdout.splitlines()) == len(shown),
                 timeout=30)
    assert cli("review", "calls").stdout.splitlines() == shown
