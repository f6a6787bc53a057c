"""``omitama-notify enqueue``: validate events and put the valid ones on the queue.

Input is one JSON event, or JSON lines (one event per line), in UTF-8 (a leading
BOM is allowed). Each refusal — a line that is not UTF-8 or not JSON, an event the
contract refuses, an ``address_registered`` whose address the worker would refuse —
is printed with its line number and the field at fault and kept for ``review
rejected``, like a refusal met by the worker; every other line is enqueued. A
refused event that still names a hold goes on the call list, as in the worker
(worker.app.intake.refuse). Valid events are enqueued as ordinary dramatiq messages.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from typing import Any, TextIO

from ..contact.addresses import normalise_address
from ..errors import AddressError, EventError, StoreError
from ..ils.events import AddressRegistered, Event, parse_event
from ..app.intake import refuse
from ..app.refusals import RefusalKind
from ..holds.outcome import Outcome
from ..settings import Settings
from ..store.client import RedisError
from ..store.core import Store


def _decode(data: bytes) -> tuple[Any, str | None]:
    """(decoded value, None), or (what was read, why it is no JSON event)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return data, (f"not UTF-8 text (byte 0x{data[e.start]:02x} at column {e.start + 1}); "
                      "send events as UTF-8")
    try:
        return json.loads(text), None
    except ValueError as e:
        return text, f"not valid JSON: {e}"
    except RecursionError:
        return text, "not valid JSON: nested too deeply"


def split_events(data: bytes) -> list[tuple[int, Any, str | None]]:
    """(line, decoded value, problem) for a single document or JSON lines; blank lines
    are skipped, and a line that is not UTF-8 or not JSON is one refusal, not the end."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    whole, problem = _decode(data)
    if problem is None:
        return [(1, whole, None)]
    out: list[tuple[int, Any, str | None]] = []
    # bytes.splitlines breaks at CR/LF only (str.splitlines also at U+2028 & co., which
    # JSON allows inside a string)
    for n, line in enumerate(data.splitlines(), 1):
        if line.strip():
            out.append((n, *_decode(line)))
    return out


def check_address(event: Event) -> None:
    """Refuse an address_registered whose address the worker would refuse: the same
    function (worker.app.registration.register), syntax only — no DNS here."""
    if isinstance(event, AddressRegistered):
        try:
            normalise_address(event.email, check_dns=False)
        except AddressError as e:
            raise EventError("email", str(e), event_id=event.event_id,
                             event_type=event.type) from None


async def _ping(settings: Settings) -> None:
    store = Store.from_settings(settings)
    try:
        await store.ping()
    finally:
        await store.close()


def enqueue_text(data: bytes, settings: Settings, *, source: str, err: TextIO) -> tuple[int, int]:
    from ..queue.actors import broker  # builds the broker from the same settings

    events = split_events(data)
    if not events:
        err.write(f"{source}: the input is empty; no event to enqueue\n")
        return 0, 0
    branches = set(settings.branches)
    try:
        asyncio.run(_ping(settings))
    except StoreError as e:
        raise StoreError(f"{e}; nothing was enqueued") from None
    ok = 0
    refusals: list[tuple[int, Any, str, str | None, str | None, RefusalKind]] = []
    for line, value, problem in events:
        kind = RefusalKind.INVALID_EVENT
        try:
            if problem:
                raise EventError("", problem)
            event = parse_event(value, branches)
            kind = RefusalKind.REFUSED_ADDRESS  # the event is valid: only its address may fail
            check_address(event)
        except EventError as e:
            refusals.append((line, value, str(e), e.event_id, e.event_type, kind))
            err.write(f"{source}:{line}: refused: {e}\n")
            continue
        try:
            broker.get_actor(event.type).send(value)
        except RedisError as e:
            raise StoreError(
                f"Redis failed at {source}:{line} ({e}) after {ok} event(s) were enqueued; "
                f"send {source} again from line {line} (a repeated hold_ready is harmless: "
                "each hold is notified once)") from None
        ok += 1

    async def keep() -> None:
        store = Store.from_settings(settings)
        try:
            for line, value, error, event_id, etype, kind in refusals:
                listed = await refuse(store, settings, value, error, listable=True,
                                      event_id=event_id, event_type=etype, source="enqueue",
                                      kind=kind)
                if listed is not None and listed.outcome is Outcome.PHONED:
                    err.write(f"{source}:{line}: the hold it names is on the phone-call list "
                              "instead (invalid_event)\n")
        finally:
            await store.close()

    if refusals:
        asyncio.run(keep())
    return ok, len(refusals)
