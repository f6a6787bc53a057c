"""Installed like a service: which settings file is used, and a wheel that works anywhere.

Which file: OMITAMA_NOTIFY_SETTINGS, else /etc/omitama-notify/settings.toml, else the
shipped defaults; relative data paths never land in /etc or in the installed package, and
a relative templates_dir missing beside the operator's file means the shipped templates.
The slow test builds the wheel (`pip install .`, not editable) into a fresh venv and runs
`omitama-notify check` from a directory that has nothing of ours in it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from worker import settings as settings_mod
from worker.settings import ENV_FILE, PROJECT_ROOT, STATE_DIR, find_settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
# what pip says when it cannot reach any index (no network, no DNS, a proxy that refuses)
_NO_REGISTRY = re.compile(r"No matching distribution found|Could not find a version that "
                          r"satisfies|Failed to establish a new connection|Network is "
                          r"unreachable|Temporary failure in name resolution|ProxyError")


def _operator_file(folder: Path, old: str = "", new: str = "") -> Path:
    """The shipped settings.toml copied into ``folder`` (with ``old`` replaced by ``new``)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "settings.toml").read_text(encoding="utf-8")
    assert old in text
    path = folder / "settings.toml"
    path.write_text(text.replace(old, new, 1) if old else text, encoding="utf-8")
    return path


def test_the_environment_variable_wins_over_etc_and_names_its_file(tmp_path):
    mine = _operator_file(tmp_path / "mine")
    etc = _operator_file(tmp_path / "etc")
    src = find_settings({ENV_FILE: str(mine)}, etc_file=etc)
    assert src.path == mine and src.data_dir == mine.parent
    assert "from OMITAMA_NOTIFY_SETTINGS" in src.describe() and str(mine) in src.describe()


def test_the_operators_file_in_etc_keeps_its_data_in_var_lib(tmp_path):
    etc = _operator_file(tmp_path / "etc")
    src = find_settings({}, etc_file=etc)
    assert src.path == etc and src.config_dir == etc.parent
    assert src.data_dir == STATE_DIR  # never /etc/omitama-notify/var
    assert src.describe() == f"{etc} (the operator's file; data in {STATE_DIR})"


def test_without_an_operators_file_the_checkouts_shipped_defaults_are_used(tmp_path):
    src = find_settings({}, etc_file=tmp_path / "absent.toml")
    # this suite runs from a checkout (the editable install): the top-level originals
    assert src.path == PROJECT_ROOT / "settings.toml" and src.data_dir == PROJECT_ROOT
    assert "shipped defaults" in src.describe()


def test_a_relative_templates_dir_missing_beside_the_file_means_the_shipped_templates(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OMITAMA_NOTIFY_MAIL__TEMPLATES_DIR"}
    s = load_settings(_operator_file(tmp_path / "a"), env)
    assert s.templates_dir == settings_mod.shipped_dir() / "templates" / "mail"
    assert (s.templates_dir / "hold_ready.body.j2").is_file()
    own = tmp_path / "a" / "templates" / "mail"
    own.mkdir(parents=True)
    assert load_settings(tmp_path / "a" / "settings.toml", env).templates_dir == own
    # a name the shipped files do not have either stays the operator's (the error names it)
    typo = load_settings(_operator_file(
        tmp_path / "b", 'templates_dir = "templates/mail"', 'templates_dir = "templates/mial"'), env)
    assert typo.templates_dir == tmp_path / "b" / "templates" / "mial"


def _copy_source(dest: Path) -> Path:
    """The repository as a clone has it (no venv, no build output, no run data)."""
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "build", "dist", "*.egg-info", "test-artifacts", "__pycache__",
        ".pytest_cache", ".mypy_cache", "_shipped"))
    return dest


@pytest.mark.slow
def test_the_built_wheel_runs_check_from_any_directory(tmp_path, clean_redis):
    src = _copy_source(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # `pip install DIR` builds a wheel (not editable) with pip's own configuration, as ./run does
    built = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", str(src)],
                           capture_output=True, text=True, timeout=900)
    if built.returncode != 0 and _NO_REGISTRY.search(built.stderr):
        # the build and the dependencies come from the package registry; offline, this
        # test cannot run (./run itself needed the registry for the first install)
        pytest.skip("no package registry reachable to build the wheel: "
                    + built.stderr.strip().splitlines()[-1][:300])
    assert built.returncode == 0, built.stderr[-3000:]
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import worker, pathlib; print(pathlib.Path(worker.__file__).parent)"],
                          capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    assert Path(site).is_relative_to(venv), site  # the installed copy, not the checkout

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in (ENV_FILE, "OMITAMA_NOTIFY_MAIL__OUTBOX_DIR", "PYTHONPATH")}
    cmd = [str(venv / "bin" / "omitama-notify"), "check"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=elsewhere, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    first = r.stdout.splitlines()[0]
    if settings_mod.ETC_FILE.is_file():  # a machine configured as a server uses its file
        assert first.startswith(f"ok    settings  {settings_mod.ETC_FILE} (the operator's file"), first
    else:
        shipped = Path(site) / "_shipped"
        assert first.startswith(f"ok    settings  {shipped / 'settings.toml'} (shipped defaults; "
                                f"data in {elsewhere})"), first
        assert f"templates in {shipped / 'templates' / 'mail'} render" in r.stdout, r.stdout
        assert f"outbox {elsewhere / 'var' / 'outbox'} is writable" in r.stdout, r.stdout
    assert f"answers at {os.environ['OMITAMA_NOTIFY_REDIS__URL']}" in r.stdout, r.stdout

    # the operator's own file, named in the environment, is used and named
    mine = _operator_file(tmp_path / "conf")
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=elsewhere,
                       env={**env, ENV_FILE: str(mine)}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"ok    settings  {mine} (from OMITAMA_NOTIFY_SETTINGS)"), r.stdout
