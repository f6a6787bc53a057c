"""Accept or refuse what arrives: every refusal is kept once for ``review rejected``."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection
from typing import Any, Awaitable, Callable

from .errors import EventError
from .events import Event, parse_event
from .store import Store

log = logging.getLogger(__name__)


def fingerprint(raw: str | bytes) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")
                          if isinstance(raw, str) else raw).hexdigest()[:32]


def _raw_text(payload: Any) -> str:
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload).decode("utf-8", "replace")
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, ensure_ascii=False, default=repr)


async def reject(store: Store, payload: Any, error: str, *, key: str | None = None,
                 event_id: str | None = None, event_type: str | None = None,
                 source: str = "queue") -> bool:
    """Keep a refused event (once per ``key``, by default its content)."""
    raw = _raw_text(payload)
    if isinstance(payload, dict):
        event_id = event_id or (payload.get("event_id") if isinstance(payload.get("event_id"), str) else None)
        event_type = event_type or (payload.get("type") if isinstance(payload.get("type"), str) else None)
    added = await store.add_rejected(key or fingerprint(raw), {
        "event_id": event_id, "type": event_type, "error": error, "source": source,
        "raw": raw[:256 * 1024]})
    if added:
        log.warning("event refused: %s (event_id=%s type=%s source=%s)",
                    error, event_id, event_type, source)
    return added


async def accept(store: Store, payload: Any, expected: str, branches: Collection[str],
                 key: str | None = None,
                 salvage: Callable[[Any, str], Awaitable[Any]] | None = None) -> Event | None:
    """Validate one event handed to the actor for ``expected``; a refusal is kept,
    ``salvage(payload, error)`` called, and None returned, so the message is
    acknowledged and the worker goes on."""
    try:
        event = parse_event(payload, branches)
    except EventError as e:
        await reject(store, payload, str(e), key=key, event_id=e.event_id,
                     event_type=e.event_type)
        error = str(e)
    else:
        if event.type == expected:
            return event
        error = (f"type: a {event.type} event was sent to the {expected} actor; use "
                 "actor_name equal to the event type")
        await reject(store, payload, error, key=key)
    if salvage is not None:
        await salvage(payload, error)
    return None
