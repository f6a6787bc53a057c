"""The Lua scripts of every atomic step (``worker/store/lua/``), each read once per process.

Each script's header names its KEYS, ARGV and replies; the strings a script writes or
returns are the values of the enums in :mod:`worker.store.vocab`."""

from __future__ import annotations

from functools import cache
from pathlib import Path

LUA_DIR = Path(__file__).with_name("lua")


@cache
def lua(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return (LUA_DIR / f"{name}.lua").read_text()
