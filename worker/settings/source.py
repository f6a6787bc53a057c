"""Which settings file is used, and the folders its relative paths are resolved against.

``OMITAMA_NOTIFY_SETTINGS``, else the operator's ``/etc/omitama-notify/settings.toml``,
else the shipped defaults — the checkout's ``settings.toml``, or in an installed wheel the
copy that setup.py puts in ``worker/_shipped/`` with ``templates/mail/``. Relative data
paths (outbox, var/) are resolved against a folder fixed by that choice, never against
the working directory of a checkout or an operator's file, and never inside ``/etc`` or
the installed package (docs/operations.md has the table).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_FILE = "OMITAMA_NOTIFY_SETTINGS"
# worker/settings/source.py → the checkout's top level
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# an installed wheel's copy of settings.toml and templates/mail/ (see setup.py); a
# checkout (and the editable install ./run makes) uses the top-level originals instead
SHIPPED_IN_PACKAGE = Path(__file__).resolve().parents[1] / "_shipped"
ETC_FILE = Path("/etc/omitama-notify/settings.toml")
# data of a server configured in /etc (FHS: configuration in /etc, state in /var/lib)
STATE_DIR = Path("/var/lib/omitama-notify")


def shipped_dir() -> Path:
    """Where the shipped settings.toml and templates/mail/ are: the wheel's copy, or the
    checkout's top level."""
    return SHIPPED_IN_PACKAGE if (SHIPPED_IN_PACKAGE / "settings.toml").is_file() else PROJECT_ROOT


@dataclass(frozen=True)
class SettingsSource:
    path: Path
    data_dir: Path    # relative data paths are resolved against this
    config_dir: Path  # a relative templates_dir is looked for here first
    why: str

    def describe(self) -> str:
        data = "" if self.data_dir == self.path.parent else f"; data in {self.data_dir}"
        return f"{self.path} ({self.why}{data})"


def find_settings(environ: dict[str, str] | None = None, etc_file: Path = ETC_FILE) -> SettingsSource:
    """The settings file to use: OMITAMA_NOTIFY_SETTINGS, /etc, else the shipped defaults."""
    env = os.environ if environ is None else environ
    if env.get(ENV_FILE):
        path = Path(env[ENV_FILE]).resolve()
        return SettingsSource(path, path.parent, path.parent, f"from {ENV_FILE}")
    if etc_file.is_file():
        return SettingsSource(etc_file, STATE_DIR, etc_file.parent, "the operator's file")
    shipped = shipped_dir()
    if shipped == PROJECT_ROOT:
        return SettingsSource(shipped / "settings.toml", shipped, shipped, "shipped defaults")
    # never write inside the installed package: a first try keeps its data where it runs
    return SettingsSource(shipped / "settings.toml", Path.cwd(), shipped, "shipped defaults")
