"""The ILS event contract: parse and validate, in one place.

Every event is a JSON object with ``event_id`` and ``type``; the fields of each
type are in DESIGN.md. Validation is strict on purpose — identifiers must be
strings, datetimes must carry an offset, dates are ``YYYY-MM-DD``, unknown
fields are refused (a misspelt ``pickup_brnach`` would otherwise vanish) — and
every refusal names the field, so the ILS integrator can fix the producer.

Text that ends up in a notice (title, author, call number, patron name) may not
contain control characters: a CR/LF there is refused rather than silently
rewritten, and the refusal is kept for ``review rejected``. Format characters
(Unicode category Cf: soft hyphens, zero-width spaces, BOMs, bidi marks) are
common and invisible in catalogue records and in names pasted from web forms;
they are dropped and the text normalised to NFC instead, so one of them does not
turn a mail into a phone call. A lone surrogate (``"\\ud800"``: not Unicode text)
is refused, naming the field, wherever it is. Every date and datetime must fall
in 2000-01-01 .. 2199-12-31, so no deadline or retention arithmetic can overflow.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import date, datetime
from collections.abc import Collection
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints,
                      TypeAdapter, ValidationError, ValidationInfo, field_validator)
from pydantic_core import ErrorDetails

from ..errors import EventError

# a guard against absurd payloads; every field has its own, smaller limit
MAX_EVENT_BYTES = 1024 * 1024

# card numbers and hold ids (the staff page's lookup checks a card number with it too)
IDENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
Ident = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=IDENT_PATTERN)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128,
                                           pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]


# what may never be in a notice line: C0/C1 controls (CR/LF break a mail header), line
# and paragraph separators, lone surrogates; format characters (Cf) are dropped instead
_REFUSED = frozenset(("Cc", "Zl", "Zp", "Cs"))


def _clean_text(v: str, max_len: int) -> str:
    """Text for a notice: controls refused, format characters dropped, NFC, stripped."""
    if not v.isprintable():  # the common case skips the walk: no Cc/Cf/Zl/Zp/Cs (nor Zs)
        for i, ch in enumerate(v):
            if unicodedata.category(ch) in _REFUSED:
                raise ValueError(f"contains a control character (U+{ord(ch):04X}) at position {i}")
        v = "".join(ch for ch in v if unicodedata.category(ch) != "Cf")
    if not unicodedata.is_normalized("NFC", v):
        v = unicodedata.normalize("NFC", v)
    v = v.strip()
    if not v:
        raise ValueError("is blank")
    if len(v) > max_len:  # NFC may lengthen a few scripts
        raise ValueError(f"is too long (at most {max_len} characters)")
    return v


def _text(max_len: int) -> Any:
    return Annotated[str, StringConstraints(min_length=1, max_length=max_len),
                     AfterValidator(lambda v: _clean_text(v, max_len))]


# Far enough either side of today for any real hold, and far from the limits of
# datetime (years 1..9999), so deadline + retention arithmetic cannot overflow.
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2199, 12, 31)


def _in_range(v: Any) -> Any:
    day = v.date() if isinstance(v, datetime) else v
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValueError(f"must fall between {EARLIEST_DAY} and {LATEST_DAY} "
                         f"(got {v.isoformat()})")
    return v


Day = Annotated[date, AfterValidator(_in_range)]
Moment = Annotated[AwareDatetime, AfterValidator(_in_range)]


def _check_phone(v: str) -> str:
    """A patron's phone number as staff dial it: digits with the separators people write
    (hyphens, spaces, parentheses; full-width ones as ASCII), an optional leading + , and
    6 to 15 digits (E.164's most). Kept as written otherwise (it is shown, not parsed)."""
    v = unicodedata.normalize("NFKC", v).strip().replace("−", "-").replace("ー", "-")
    if not re.fullmatch(r"\+?[0-9(][0-9 ()-]*", v) or v.endswith(("-", "(", " ")):
        raise ValueError("must be a phone number: digits, hyphens, spaces or parentheses, "
                         "an optional leading + (e.g. 0299-58-5828)")
    digits = sum(c.isdigit() for c in v)
    if not 6 <= digits <= 15:
        raise ValueError(f"must have 6 to 15 digits (has {digits})")
    return v


Phone = Annotated[str, StringConstraints(min_length=1, max_length=32),
                  AfterValidator(_check_phone)]


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
    ready_at: Moment
    pickup_by: Day
    contact: Literal["email", "phone"]
    patron_name: _text(100) | None = None  # type: ignore[valid-type]
    # for the call list (a tel: link); kept in the hold's event, so no longer than the hold
    patron_phone: Phone | None = None

    _branch = field_validator("pickup_branch")(_check_branch)


class AddressRegistered(_Event):
    type: Literal["address_registered"]
    card_number: Ident
    email: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    registered_at: Moment
    application_branch: str

    _branch = field_validator("application_branch")(_check_branch)


class AddressRemoved(_Event):
    type: Literal["address_removed"]
    card_number: Ident
    removed_at: Moment


class HoldCancelled(_Event):
    type: Literal["hold_cancelled"]
    hold_id: Ident


class HoldPickedUp(_Event):
    type: Literal["hold_picked_up"]
    hold_id: Ident


class HoldRef(BaseModel):
    """What a refused ``hold_ready`` still tells for sure: which hold, whose card, which
    counter. Enough for staff to phone the patron (worker.app.holds.phone_refused); the
    title and the last day are kept only when they are valid themselves."""
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    hold_id: Ident
    card_number: Ident
    pickup_branch: str
    title: _text(500) | None = None  # type: ignore[valid-type]
    pickup_by: Day | None = None

    _branch = field_validator("pickup_branch")(_check_branch)


_TITLE = TypeAdapter(_text(500))
_DAY = TypeAdapter(Day)


def _valid(adapter: TypeAdapter[Any], value: Any) -> Any:
    """``value`` if it is valid by itself (as strict JSON, like the event), else None."""
    try:
        return adapter.validate_json(json.dumps(value), strict=True)
    except (ValidationError, ValueError, RecursionError):  # invalid, or not even JSON
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
    except (ValidationError, ValueError, RecursionError):
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


def _visible(text: str) -> str:
    """``text`` fit for one line of a message: what is not printable, escaped."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


# what a patron reads and who they are: a refusal's message is logged, so it never
# quotes these fields' values (the raw payload is kept for `review rejected`)
_PERSONAL = frozenset({"title", "author", "call_number", "patron_name", "patron_phone", "email"})


def _describe(err: ErrorDetails) -> tuple[str, str]:
    field = ".".join(_visible(str(p)) for p in err["loc"])
    msg = _FRIENDLY.get(err["type"]) or err["msg"]
    if err["type"] == "string_too_long":
        msg = f"is too long (at most {err['ctx']['max_length']} characters)"
    elif err["type"] == "value_error":
        msg = str(err["ctx"]["error"])
    elif err["type"] not in ("missing", "extra_forbidden") and not (
            _PERSONAL & {str(p) for p in err["loc"]}):
        shown = repr(err.get("input"))
        msg += f" (got {shown[:40]}{'…' if len(shown) > 40 else ''})"
    return field, msg


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(value: Any, **dumps: Any) -> str:
    """``value`` as JSON text that always encodes to UTF-8 (Redis, files, a terminal):
    non-ASCII stays readable, and a lone surrogate — which a producer can send as
    ``"\\ud800"`` but is no Unicode text — is written back as that same escape."""
    text = json.dumps(value, ensure_ascii=False, **dumps)
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def _lone_surrogate(data: Any) -> EventError:
    """The refusal naming the first string (key or value) holding a lone surrogate."""
    todo: list[tuple[str, Any]] = [("", data)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, str):
            hit = _SURROGATE.search(value)
            if hit:
                return EventError(path, f"contains a lone surrogate (U+{ord(hit[0]):04X}) at "
                                  f"position {hit.start()}, which is not Unicode text; "
                                  "send text as UTF-8")
        elif isinstance(value, dict):
            for k, v in value.items():
                name = f"{path}.{_visible(str(k))}" if path else _visible(str(k))
                if isinstance(k, str) and _SURROGATE.search(k):
                    return EventError(name, "this field name contains a lone surrogate, "
                                      "which is not Unicode text")
                todo.append((name, v))
        elif isinstance(value, list):
            todo.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(value))
    return EventError("", "contains text that is not Unicode")


def _plain_str(value: Any) -> str | None:
    """``value`` if it is a string that can be stored and printed as it is, else None."""
    return value if isinstance(value, str) and value.isprintable() else None


def parse_event(data: Any, branches: Collection[str] | None = None) -> Event:
    """Validate one decoded event; raises EventError naming every field at fault —
    and nothing else, whatever the input (tests/test_event_properties.py)."""
    if not isinstance(data, dict):
        raise EventError("", f"an event must be a JSON object, not {type(data).__name__}")
    event_id = _plain_str(data.get("event_id"))
    etype = data.get("type")
    if not isinstance(etype, str) or etype not in EVENT_TYPES:
        raise EventError("type", f"unknown event type {etype!r}; expected one of "
                         f"{', '.join(EVENT_TYPES)}", event_id=event_id)
    try:
        raw = json.dumps(data, ensure_ascii=False)
        size = len(raw.encode())
    except UnicodeEncodeError:
        err = _lone_surrogate(data)
        err.event_id, err.event_type = event_id, etype
        raise err from None
    except (ValueError, RecursionError) as e:  # a number too long to write, nesting too deep
        raise EventError("", f"cannot be written as JSON ({_visible(str(e))[:80]})",
                         event_id=event_id, event_type=etype) from None
    if size > MAX_EVENT_BYTES:
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
