"""``omitama-notify enqueue``: validate events and put the valid ones on the queue.

Input is one JSON event, or JSON lines (one event per line). Each refusal is
printed with the field at fault and kept for ``review rejected``, like a refusal
met by the worker — and a refused event that still names a hold goes on the call
list, as in the worker (worker.intake.refuse). Valid events are enqueued as
ordinary dramatiq messages.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TextIO

import redis

from .errors import EventError, StoreError
from .events import parse_event
from .holds import Outcome
from .intake import refuse
from .settings import Settings
from .store import Store, safe_url


def split_events(text: str) -> list[tuple[int, Any, str | None]]:
    """(line, decoded value, JSON error) for a single document or JSON lines."""
    try:
        return [(1, json.loads(text), None)]
    except ValueError:
        pass
    out: list[tuple[int, Any, str | None]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line), None))
        except ValueError as e:
            out.append((n, line, f"not valid JSON: {e}"))
    return out


def enqueue_text(text: str, settings: Settings, *, source: str, err: TextIO) -> tuple[int, int]:
    from .actors import broker  # builds the broker from the same settings

    branches = set(settings.branches)
    try:
        broker.client.ping()
    except redis.RedisError as e:
        raise StoreError(f"cannot reach Redis at {safe_url(settings.redis.url)} ({e}); "
                         "nothing was enqueued") from None
    ok = 0
    refusals: list[tuple[int, Any, str, str | None, str | None]] = []
    for line, value, problem in split_events(text):
        try:
            if problem:
                raise EventError("", problem)
            event = parse_event(value, branches)
        except EventError as e:
            refusals.append((line, value, str(e), e.event_id, e.event_type))
            err.write(f"{source}:{line}: refused: {e}\n")
            continue
        try:
            broker.get_actor(event.type).send(value)
        except redis.RedisError as e:
            raise StoreError(
                f"Redis failed at {source}:{line} ({e}) after {ok} event(s) were enqueued; "
                f"send {source} again from line {line} (a repeated hold_ready is harmless: "
                "each hold is notified once)") from None
        ok += 1

    async def keep() -> None:
        store = Store.connect(settings.redis.url, settings.redis.key_prefix)
        try:
            for line, value, error, event_id, etype in refusals:
                listed = await refuse(store, settings, value, error, listable=True,
                                      event_id=event_id, event_type=etype, source="enqueue")
                if listed is not None and listed.outcome is Outcome.PHONED:
                    err.write(f"{source}:{line}: the hold it names is on the phone-call list "
                              "instead (invalid_event)\n")
        finally:
            await store.close()

    if refusals:
        asyncio.run(keep())
    return ok, len(refusals)
