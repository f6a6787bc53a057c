"""The Lua scripts of every atomic step (``worker/store/lua/``), each read once per process.

Each script's header names its KEYS, ARGV and replies; the strings a script writes or
returns are the values of the enums in :mod:`worker.store.vocab`."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

LUA_DIR = Path(__file__).with_name("lua")


# a line `-- include: <name>` is replaced by lua/<name>.lua: a helper shared by scripts
INCLUDE = re.compile(r"^-- include: (\w+)$", re.M)


@cache
def lua(name: str) -> str:
    """The text of ``lua/<name>.lua``, its includes in place."""
    return INCLUDE.sub(lambda m: lua(m[1]), (LUA_DIR / f"{name}.lua").read_text())
