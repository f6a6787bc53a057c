"""The test suite as a newcomer runs it (issue 23, item 7): a run leaves nothing in the
temporary folder, and without a package registry the wheel test is skipped with the
reason instead of failing. One nested pytest run, offline for pip, in its own TMPDIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_run_leaves_no_files_behind_and_skips_the_wheel_without_a_registry(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # pip with no index, no local wheels and no config file: as on a machine offline
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull,
               "PIP_EXTRA_INDEX_URL": "", "TMPDIR": str(tmp)}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/test_packaging.py::test_the_built_wheel_runs_check_from_any_directory",
         "tests/test_redis_version.py::test_check_names_the_version_that_answers"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **offline})
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "1 passed, 1 skipped" in out, out[-3000:]
    assert "no package registry reachable to build the wheel" in out, out[-3000:]
    assert list(tmp.iterdir()) == [], f"left behind: {list(tmp.rglob('*'))[:10]}"
