"""The ILS event contract: parse and validate, in one place.

Every event is a JSON object with ``event_id`` and ``type``; the fields of each
type are in DESIGN.md. Validation is strict on purpose — identifiers must be
strings, datetimes must carry an offset, dates are ``YYYY-MM-DD``, unknown
fields are refused (a misspelt ``pickup_brnach`` would otherwise vanish) — and
every refusal names the field, so the ILS integrator can fix the producer.

Text that ends up in a notice (title, author, patron name) may not contain
control characters: a CR/LF there is refused rather than silently rewritten,
and the refusal is kept for ``review rejected``.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import date
from collections.abc import Collection
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints,
                      TypeAdapter, ValidationError, ValidationInfo, field_validator)
from pydantic_core import ErrorDetails

from .errors import EventError

# a guard against absurd payloads; every field has its own, smaller limit
MAX_EVENT_BYTES = 1024 * 1024

Ident = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                         pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128,
                                           pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]


def _no_controls(v: str) -> str:
    for i, ch in enumerate(v):
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch != "\u200d":
            raise ValueError(f"contains a control character (U+{ord(ch):04X}) at position {i}")
    if not v.strip():
        raise ValueError("is blank")
    return v.strip()


def _text(max_len: int) -> Any:
    return Annotated[str, StringConstraints(min_length=1, max_length=max_len),
                     AfterValidator(_no_controls)]


class _Event(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    event_id: EventId


def _check_branch(v: str, info: ValidationInfo) -> str:
    branches = (info.context or {}).get("branches")
    if branches is not None and v not in branches:
        raise ValueError(f"unknown branch {v!r}; expected one of {', '.join(sorted(branches))}")
    return v


class Item(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    title: _text(500)  # type: ignore[valid-type]
    author: _text(200) | None = None  # type: ignore[valid-type]
    call_number: _text(64) | None = None  # type: ignore[valid-type]
    material: Literal["book", "magazine", "av"]


class HoldReady(_Event):
    type: Literal["hold_ready"]
    hold_id: Ident
    card_number: Ident
    item: Item
    pickup_branch: str
    ready_at: AwareDatetime
    pickup_by: date
    contact: Literal["email", "phone"]
    patron_name: _text(100) | None = None  # type: ignore[valid-type]

    _branch = field_validator("pickup_branch")(_check_branch)


class AddressRegistered(_Event):
    type: Literal["address_registered"]
    card_number: Ident
    email: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    registered_at: AwareDatetime
    application_branch: str

    _branch = field_validator("application_branch")(_check_branch)


class AddressRemoved(_Event):
    type: Literal["address_removed"]
    card_number: Ident
    removed_at: AwareDatetime


class HoldCancelled(_Event):
    type: Literal["hold_cancelled"]
    hold_id: Ident


class HoldPickedUp(_Event):
    type: Literal["hold_picked_up"]
    hold_id: Ident


class HoldRef(BaseModel):
    """What a refused ``hold_ready`` still tells for sure: which hold, whose card, which
    counter. Enough for staff to phone the patron (worker.holds.phone_refused); the
    title and the last day are kept only when they are valid themselves."""
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    hold_id: Ident
    card_number: Ident
    pickup_branch: str
    title: _text(500) | None = None  # type: ignore[valid-type]
    pickup_by: date | None = None

    _branch = field_validator("pickup_branch")(_check_branch)


_TITLE = TypeAdapter(_text(500))
_DAY = TypeAdapter(date)


def _valid(adapter: TypeAdapter[Any], value: Any) -> Any:
    """``value`` if it is valid by itself (as strict JSON, like the event), else None."""
    try:
        return adapter.validate_json(json.dumps(value), strict=True)
    except ValidationError:
        return None


def hold_ref(data: Any, branches: Collection[str]) -> HoldRef | None:
    """The hold a refused event addressed to the ``hold_ready`` actor is about, or None
    when it names no hold, card and branch we can trust — or says it is another type."""
    if not isinstance(data, dict):
        return None
    etype = data.get("type")
    if isinstance(etype, str) and etype in EVENT_TYPES and etype != "hold_ready":
        return None
    fields = {k: data.get(k) for k in ("hold_id", "card_number", "pickup_branch")}
    try:  # the identifiers must hold ...
        ref = HoldRef.model_validate_json(json.dumps(fields), strict=True,
                                          context={"branches": branches})
    except ValidationError:
        return None
    item = data.get("item")
    title = item.get("title") if isinstance(item, dict) else None
    # ... the title and the last day are shown only when valid by themselves
    return ref.model_copy(update={"title": _valid(_TITLE, title),
                                  "pickup_by": _valid(_DAY, data.get("pickup_by"))})


Event = Union[HoldReady, AddressRegistered, AddressRemoved, HoldCancelled, HoldPickedUp]
EVENT_TYPES: dict[str, type[_Event]] = {
    "hold_ready": HoldReady,
    "address_registered": AddressRegistered,
    "address_removed": AddressRemoved,
    "hold_cancelled": HoldCancelled,
    "hold_picked_up": HoldPickedUp,
}

_FRIENDLY = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this event type",
    "string_type": "must be a string",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "timezone_aware": "must carry a UTC offset, e.g. 2026-12-01T10:00:00+09:00",
    "string_too_long": "is too long",
    "string_pattern_mismatch": "may only hold letters, digits and . _ : / - (at most 64)",
}


def _describe(err: ErrorDetails) -> tuple[str, str]:
    field = ".".join(str(p) for p in err["loc"])
    msg = _FRIENDLY.get(err["type"]) or err["msg"]
    if err["type"] == "string_too_long":
        msg = f"is too long (at most {err['ctx']['max_length']} characters)"
    elif err["type"] == "value_error":
        msg = str(err["ctx"]["error"])
    elif err["type"] not in ("missing", "extra_forbidden"):
        shown = repr(err.get("input"))
        msg += f" (got {shown[:40]}{'…' if len(shown) > 40 else ''})"
    return field, msg


def parse_event(data: Any, branches: Collection[str] | None = None) -> Event:
    """Validate one decoded event; raises EventError naming every field at fault."""
    if not isinstance(data, dict):
        raise EventError("", f"an event must be a JSON object, not {type(data).__name__}")
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    etype = data.get("type")
    if not isinstance(etype, str) or etype not in EVENT_TYPES:
        raise EventError("type", f"unknown event type {etype!r}; expected one of "
                         f"{', '.join(EVENT_TYPES)}", event_id=event_id)
    raw = json.dumps(data, ensure_ascii=False)
    if len(raw.encode()) > MAX_EVENT_BYTES:
        raise EventError("", f"event is larger than {MAX_EVENT_BYTES // 1024} KiB",
                         event_id=event_id, event_type=etype)
    try:
        return EVENT_TYPES[etype].model_validate_json(
            raw, strict=True, context={"branches": branches})  # type: ignore[return-value]
    except ValidationError as e:
        parts = [_describe(err) for err in e.errors(include_url=False)]
        field = parts[0][0]
        problem = "; ".join(f"{f}: {m}" for f, m in parts)
        err = EventError(field, problem, event_id=event_id, event_type=etype)
        err.args = (problem,)
        raise err from None


def parse_event_json(text: str | bytes, branches: Collection[str] | None = None) -> Event:
    """Parse a JSON document holding one event."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise EventError("", f"not valid JSON: {e}") from None
    return parse_event(data, branches)
