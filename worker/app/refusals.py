"""Keep what was refused, once, for ``review rejected`` (staff and the ILS team read it).

The lowest step of refusing: the worker's intake (and through it ``omitama-notify
enqueue``), the malformed-message actor and registration all keep their refusals here.
"""

from __future__ import annotations

import hashlib
import logging
from enum import StrEnum
from typing import Any

from ..ils.events import json_text
from ..store.core import Store

log = logging.getLogger(__name__)


class RefusalKind(StrEnum):
    """What a ``review rejected`` row is (its ``kind``): the staff page and the CLI each
    say it in their own language. Rows kept before kinds existed have none."""

    MALFORMED_ENVELOPE = "malformed_envelope"  # no JSON, no valid envelope, no such actor
    WRONG_ACTOR = "wrong_actor"                # a valid event sent to another type's actor
    INVALID_EVENT = "invalid_event"            # the event fails validation (worker.ils.events)
    REFUSED_ADDRESS = "refused_address"        # address_registered with an unusable address
    # a valid hold_ready naming another card or branch than the hold's first event, which
    # decides (worker/app/holds.py): kept so the ILS team can see what it sent
    CONFLICTING_EVENT = "conflicting_event"


def payload_fingerprint(raw: str | bytes) -> str:
    """What a refused payload is kept under in ``rejected``: 128 bits of the SHA-256 of
    its bytes (a payload refused twice is one row). Not the bounce mails' fingerprint
    (worker/app/ingest.py: mail_fingerprint), which prefers the mail's Message-ID."""
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")
                          if isinstance(raw, str) else raw).hexdigest()[:32]


def _storable(text: str) -> str:
    """``text`` as Redis can take it: a lone surrogate (not Unicode) written as its escape."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _raw_text(payload: Any) -> str:
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload).decode("utf-8", "replace")
    if isinstance(payload, str):
        return _storable(payload)
    try:
        return json_text(payload, default=repr)
    except (ValueError, RecursionError):  # a number too long to write, nesting too deep
        return f"<a {type(payload).__name__} that cannot be written as JSON>"


def _printable(value: Any) -> str | None:
    return value if isinstance(value, str) and value.isprintable() else None


def _named(payload: dict[str, Any], key: str) -> str | None:
    return _printable(payload.get(key))


async def keep_refusal(store: Store, payload: Any, error: str, *, key: str | None = None,
                 event_id: str | None = None, event_type: str | None = None,
                 source: str = "queue", kind: RefusalKind = RefusalKind.INVALID_EVENT) -> bool:
    """Keep a refused event (once per ``key``, by default its content) as ``kind``."""
    raw = _raw_text(payload)
    # what callers name the event by comes from the payload too (a refused envelope's
    # event, say): a lone surrogate or a control character there must not make the
    # refusal unstorable, so it is checked here whoever passes it
    event_id, event_type = _printable(event_id), _printable(event_type)
    if isinstance(payload, dict):
        event_id = event_id or _named(payload, "event_id")
        event_type = event_type or _named(payload, "type")
    added = await store.add_rejected(key or payload_fingerprint(raw), {
        "event_id": event_id, "type": event_type, "error": _storable(error), "source": source,
        "kind": kind.value, "raw": raw[:256 * 1024]})
    if added:
        log.warning("event refused (%s): %s (event_id=%s type=%s source=%s)",
                    kind.value, error, event_id, event_type, source)
    return added
