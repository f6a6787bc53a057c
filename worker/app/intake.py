"""Accept or refuse what arrives: every refusal is kept once for ``review rejected``,
and a refused hold_ready that still names its hold goes on the call list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import EventError
from ..ils.events import Event, parse_event
from ..ils.messages import carried_event, meant_as_hold_ready
from .holds import Result, phone_refused
from .refusals import RefusalKind, keep_refusal
from ..runtime import Runtime
from ..settings import Settings
from ..store.core import Store


@dataclass(frozen=True)
class Refused:
    """What :func:`accept` gives for a refused event: the reason, and for a refused
    ``hold_ready`` that still named its hold, how listing it for a call went."""
    error: str
    listed: Result | None = None


async def refuse(store: Store, settings: Settings, payload: Any, error: str, *,
                 listable: bool, key: str | None = None, event_id: str | None = None,
                 event_type: str | None = None, source: str = "queue",
                 kind: RefusalKind = RefusalKind.INVALID_EVENT,
                 event: Any = None) -> Result | None:
    """Keep a refused event once (:func:`reject`) and, when ``listable`` (it was meant as
    a hold_ready), put the hold it still names on the call list
    (:func:`worker.app.holds.phone_refused`): the hold is ready in the ILS whatever the event
    got wrong. Both ways in — the queue and ``omitama-notify enqueue`` — refuse through here.
    ``event`` is what names the hold when ``payload`` is more (a whole message)."""
    await keep_refusal(store, payload, error, key=key, event_id=event_id, event_type=event_type,
                 source=source, kind=kind)
    if not listable:
        return None
    return await phone_refused(store, settings, payload if event is None else event, error)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def refuse_message(store: Store, settings: Settings, raw: str, problem: str,
                         key: str | None) -> Result | None:
    """A message that is no valid envelope (see worker.queue.envelope): keep it whole, once, under
    the event_id and type of the event it carries; and when that event is a hold_ready
    that names its hold, card and branch, list the hold for a call as for any refused
    hold_ready — a wrong envelope does not make the hold less ready."""
    event, actor = carried_event(raw)
    ev = event if isinstance(event, dict) else {}
    return await refuse(store, settings, raw, problem, key=key,
                        listable=event is not None and meant_as_hold_ready(event, actor),
                        event_id=_text(ev.get("event_id")), event_type=_text(ev.get("type")),
                        kind=RefusalKind.MALFORMED_ENVELOPE, event=event)


async def accept(rt: Runtime, payload: Any, expected: str,
                 key: Callable[[], str | None] = lambda: None) -> Event | Refused:
    """Validate one event handed to the actor for ``expected``. A refusal is kept (and,
    for ``hold_ready``, its hold listed) and returned as :class:`Refused`, so the message
    is acknowledged and the worker goes on. ``key()`` names the refusal; it is computed
    only when there is one (it hashes the message: not worth it for every accepted event)."""
    listable = meant_as_hold_ready(payload, expected)
    try:
        event = parse_event(payload, rt.branches)
    except EventError as e:
        error = str(e)
        listed = await refuse(rt.store, rt.settings, payload, error, listable=listable,
                              key=key(), event_id=e.event_id, event_type=e.event_type)
        return Refused(error, listed)
    if event.type == expected:
        return event
    error = (f"type: a {event.type} event was sent to the {expected} actor; use "
             "actor_name equal to the event type")
    return Refused(error, await refuse(rt.store, rt.settings, payload, error,
                                       listable=listable, key=key(), event_id=event.event_id,
                                       event_type=event.type, kind=RefusalKind.WRONG_ACTOR))
