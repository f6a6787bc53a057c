"""Accept or refuse what arrives: every refusal is kept once for ``review rejected``,
and a refused hold_ready that still names its hold goes on the call list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import EventError
from .events import Event, parse_event
from .holds import Result, phone_refused
from .refusals import reject
from .runtime import Runtime
from .settings import Settings
from .store import Store


@dataclass(frozen=True)
class Refused:
    """What :func:`accept` gives for a refused event: the reason, and for a refused
    ``hold_ready`` that still named its hold, how listing it for a call went."""
    error: str
    listed: Result | None = None


async def refuse(store: Store, settings: Settings, payload: Any, error: str, *,
                 listable: bool, key: str | None = None, event_id: str | None = None,
                 event_type: str | None = None, source: str = "queue") -> Result | None:
    """Keep a refused event once (:func:`reject`) and, when ``listable`` (it was meant as
    a hold_ready), put the hold it still names on the call list
    (:func:`worker.holds.phone_refused`): the hold is ready in the ILS whatever the event
    got wrong. Both ways in — the queue and ``omitama-notify enqueue`` — refuse through here."""
    await reject(store, payload, error, key=key, event_id=event_id, event_type=event_type,
                 source=source)
    if not listable:
        return None
    return await phone_refused(store, settings, payload, error)


async def accept(rt: Runtime, payload: Any, expected: str,
                 key: str | None = None) -> Event | Refused:
    """Validate one event handed to the actor for ``expected``. A refusal is kept (and,
    for ``hold_ready``, its hold listed) and returned as :class:`Refused`, so the message
    is acknowledged and the worker goes on."""
    listable = expected == "hold_ready"
    try:
        event = parse_event(payload, rt.branches)
    except EventError as e:
        error = str(e)
        listed = await refuse(rt.store, rt.settings, payload, error, listable=listable,
                              key=key, event_id=e.event_id, event_type=e.event_type)
        return Refused(error, listed)
    if event.type == expected:
        return event
    error = (f"type: a {event.type} event was sent to the {expected} actor; use "
             "actor_name equal to the event type")
    return Refused(error, await refuse(rt.store, rt.settings, payload, error,
                                       listable=listable, key=key))
