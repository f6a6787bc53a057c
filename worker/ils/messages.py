"""Which event a dramatiq message carries, read one way by both that ask: the intake
refusing a message that is no valid envelope (worker/app/intake.py) and ``holds
missing`` looking for the holds the queue still names (worker/store/hold_states.py).
Two readings drifted once: the queue's read only the first argument, so a hold_ready
sent in ``kwargs`` — refused as an envelope, and its hold listed for a call — was
reported "unknown" (re-announce it) while its listing was on the way. Pure: no Redis.
"""

from __future__ import annotations

import json
from typing import Any

# the worker's own actor a message that is no valid envelope is handed to, its raw text
# as the first argument (worker/queue/internal.py says why it is signed)
MALFORMED_ACTOR = "omitama_malformed"


def carried_event(raw: str | bytes) -> tuple[Any, Any]:
    """The event a message carries (its first object argument, else its first object
    keyword argument) and the actor it was sent to; (None, None) if unreadable. When
    that argument is itself a message (the form of the worker's own give-up, which a
    producer may forge: see worker/queue/internal.py), the event and actor inside it."""
    try:
        fields = json.loads(raw)
    except ValueError:  # UnicodeDecodeError included
        return None, None
    event, actor = _carried(fields)
    if isinstance(event, dict) and "type" not in event and "actor_name" in event \
            and isinstance(event.get("args"), list):
        event, actor = _carried(event)
    return event, actor


def _carried(fields: Any) -> tuple[Any, Any]:
    if not isinstance(fields, dict):
        return None, None
    args, kwargs = fields.get("args"), fields.get("kwargs")
    found = [a for a in args if isinstance(a, dict)] if isinstance(args, list) else []
    found += [v for v in kwargs.values() if isinstance(v, dict)] if isinstance(kwargs, dict) else []
    return (found[0] if found else None), fields.get("actor_name")


def meant_as_hold_ready(payload: Any, actor: Any) -> bool:
    """Whether a refused event may be a ready hold: sent to the hold_ready actor, or saying
    it is a hold_ready wherever it was sent (``hold_ref`` then drops one that says it is
    another type, and one that names no hold, card and branch)."""
    return actor == "hold_ready" or (isinstance(payload, dict)
                                     and payload.get("type") == "hold_ready")


def queued_hold(raw: str | bytes) -> str | None:
    """The hold a message waiting in the queue will notify or list, or None: the
    ``hold_id`` of the event it carries when that is meant as a hold_ready — whether a
    valid envelope, one the decoder will refuse (its event still listed), or a give-up.
    Our own retry of a refused envelope carries that envelope's raw text: read as the
    ``omitama_malformed`` actor reads it, one level down."""
    event, actor = carried_event(raw)
    if event is None and actor == MALFORMED_ACTOR:
        args = json.loads(raw).get("args")  # it parsed: carried_event found the actor
        if isinstance(args, list) and args and isinstance(args[0], str):
            event, actor = carried_event(args[0])
    if not isinstance(event, dict) or not meant_as_hold_ready(event, actor):
        return None
    hold = event.get("hold_id")
    return hold if isinstance(hold, str) else None
