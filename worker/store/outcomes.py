"""The outcome stream: every outcome of a hold, told back to the ILS (issue 13).

Redis Stream ``<key_prefix>outcomes``; each entry has the fields ``hold_id``,
``card_number``, ``outcome``, ``reason``, ``message_id`` and ``at`` (ISO 8601, +09:00),
always all six (empty when they do not apply), trimmed approximately (``MAXLEN ~``) to
``[outcomes] maxlen``. docs/ils-integration.md shows how a non-Python ILS reads it.

An outcome is written by the very script that changes the hold's state — no outcome
without its state, no state without its outcome. Rather than thread the stream through
each state script (and their ARGV lists, some of which end in field/value pairs), each
script is *wrapped*: :func:`with_outcomes` puts the original text, unchanged, inside a
Lua function, runs a small "before" step (what the hold was) and, from the script's
reply, an "after" step that appends the outcome. The caller appends one key (the
stream) and two arguments (maxlen, at) to what the script takes; the wrapper removes
them before the script runs, so the script sees exactly the KEYS and ARGV it declares.
The Lua lives beside every other script: ``lua/outcomes.lua`` (the shared ``emit``) and
``lua/outcomes_<script>.lua`` (each script's before and after steps; the outcome names
are :class:`worker.store.vocab.HoldOutcome`, checked by tests/test_lua_vocab.py).
Scripts written with the stream in mind append themselves: ``remind_done.lua``
(``reminded``); the digest's holds are finished by the wrapped ``finish_hold``.
"""

from __future__ import annotations

import re
from functools import cache

from .scripts import lua
from .vocab import HoldOutcome

__all__ = ["DEFAULT_MAXLEN", "HoldOutcome", "outcome_args", "with_outcomes"]

DEFAULT_MAXLEN = 100_000
_PARTS = re.compile(r"^-- \[before\]\n(.*?)^-- \[after\]\n(.*)\Z", re.M | re.S)


@cache
def with_outcomes(name: str) -> str:
    """The text of ``lua/<name>.lua`` wrapped so that it also appends its outcomes
    (``lua/outcomes.lua``, then the steps of ``lua/outcomes_<name>.lua``)."""
    steps = _PARTS.search(lua(f"outcomes_{name}"))
    assert steps is not None, f"outcomes_{name}.lua has no '-- [before]' and '-- [after]' parts"
    before, after = steps.groups()
    return (f"{lua('outcomes')}{before}local result = (function()\n{lua(name)}\nend)()\n"
            f"{after}return result\n")


def outcome_args(maxlen: int, at: str) -> list[str | int]:
    """What a caller appends to a wrapped script's ARGV (its KEYS get the stream key)."""
    return [maxlen, at]
