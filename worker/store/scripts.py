"""The Lua scripts of every atomic step (``worker/store/lua/``), each read once per process.

Each script's header names its KEYS, ARGV and replies; the strings a script writes or
returns are the values of the enums in :mod:`worker.store.vocab`.

Every script may run twice for one call: a client whose connection broke before the reply
came sends the call again (redis-py's retry; with Sentinel through a whole failover,
worker/store/connect.py), and the first run may have been applied. So each is safe to
repeat with the same KEYS and ARGV: ``claim_hold`` answers its own token's claim again,
``gather_join`` the window the hold waits in, ``gather_take`` and ``remind_take`` the holds
their token took; ``finish_hold``,
``close_hold``, ``remind_done``, ``rephone_hold`` and the outcome wrappers change nothing
the second time and append no second outcome; ``mark_called``/``uncall`` answer "not
listed"/"nothing to undo"; ``requeue_stranded`` and ``adopt_orphan`` act once (their
marker); ``fetch`` repeated leaves the first run's messages in the ack set for the sweeper;
``extend_lease``, ``lease_keep``, ``purge_hold`` and ``trim_old`` end in the same state;
``take_stale`` repeated leaves the first run's holds for its next pass; ``gather_due``
repeated leaves the first run's windows to be found again a lease later (a window sent
that much late, never lost). A new script must keep this true."""

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
