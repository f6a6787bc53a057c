"""Issue 24 #4: every numeric setting refuses inf, -inf, nan and absurd sizes with one
line naming the key; impossible combinations likewise. Walks the settings model, so a
numeric setting added later is covered without touching this file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from worker.errors import ConfigError
from worker.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def numeric_settings() -> list[tuple[str, str]]:
    """(section, key) of every int or float setting of the model."""
    found = []
    for section, info in Settings.model_fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key, f in model.model_fields.items():
            if f.annotation in (int, float):
                found.append((section, key))
    return found


NUMERIC = numeric_settings()


def test_the_walk_finds_the_numeric_settings():
    assert {("delivery", "lease_s"), ("delivery", "max_backoff_s"), ("smtp", "timeout"),
            ("bounces", "poll_s"), ("outcomes", "maxlen")} <= set(NUMERIC)
    assert len(NUMERIC) > 30


def _load(tmp_path: Path, section: str, key: str, value: str) -> Any:
    f = tmp_path / "settings.toml"
    # the same key in its own table again would be a TOML error: set it by the environment
    f.write_text((ROOT / "settings.toml").read_text(encoding="utf-8"), encoding="utf-8")
    env = {f"OMITAMA_NOTIFY_{section.upper()}__{key.upper()}": value}
    return load_settings(f, env)


@pytest.mark.parametrize("section,key", NUMERIC)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e300", "10000000000000000000000"])
def test_every_numeric_setting_refuses_non_finite_and_absurd_values(tmp_path, section, key, value):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, section, key, value)
    text = str(e.value)
    assert e.value.key == f"[{section}] {key}" and "\n" not in text, text


@pytest.mark.parametrize("literal", ["inf", "+inf", "-inf", "nan"])
def test_a_toml_literal_inf_is_refused_too(tmp_path, literal):
    f = tmp_path / "settings.toml"
    shipped = (ROOT / "settings.toml").read_text(encoding="utf-8")
    assert "\ngather_s = 900 " in shipped
    f.write_text(shipped.replace("\ngather_s = 900 ", f"\ngather_s = {literal} "),
                 encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_settings(f, {})
    assert e.value.key == "[digest] gather_s", e.value


@pytest.mark.parametrize("env,key", [
    ({"MIN_BACKOFF_S": "60", "MAX_BACKOFF_S": "30"}, "[delivery] max_backoff_s"),
])
def test_impossible_delivery_combination_names_the_key(tmp_path, env, key):
    f = tmp_path / "settings.toml"
    f.write_text((ROOT / "settings.toml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_settings(f, {f"OMITAMA_NOTIFY_DELIVERY__{k}": v for k, v in env.items()})
    assert e.value.key == key and "min_backoff_s" in str(e.value)


def test_tls_and_starttls_together_are_refused(tmp_path):
    f = tmp_path / "settings.toml"
    f.write_text((ROOT / "settings.toml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_settings(f, {"OMITAMA_NOTIFY_SMTP__TLS": "true",
                          "OMITAMA_NOTIFY_SMTP__STARTTLS": "true"})
    assert e.value.key == "[smtp] tls" and "starttls" in str(e.value)


@pytest.mark.parametrize("key", ["MAX_BACKOFF_S", "LEASE_S"])
@pytest.mark.parametrize("command", [("check",), ("worker",), ("review", "calls")])
def test_inf_stops_every_command_with_one_line(key, command):
    r = subprocess.run([sys.executable, "-m", "worker.cli.main", *command],
                       capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env={**os.environ, f"OMITAMA_NOTIFY_DELIVERY__{key}": "inf"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert f"[delivery] {key.lower()}" in lines[0] and "finite" in lines[0], r.stderr
