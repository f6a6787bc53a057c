"""Hypothesis strategies for hostile ILS input, and the oracle the harness judges it by.

Events are built from the contract (DESIGN.md "Events in", worker/ils/events.py) field by
field: each field is mostly valid and sometimes replaced by a hostile value. Every
replacement carries a *level*:

* ``OK``: valid by the contract (a soft hyphen in a title, an NFD title, no
  ``redis_message_id``) — the event must be accepted and acted on;
* ``DUBIOUS``: the contract does not settle it (a float ``message_timestamp``,
  ``pickup_by`` 9999-12-31) — accepted or refused, both are fine;
* ``BAD``: invalid (wrong type, CR/LF, lone surrogate, foreign queue) — must be refused.

A payload's level is the highest of its parts. Identifiers that should name a hold,
a card or an address are :class:`Slot` placeholders, turned into ids unique to the
run by :func:`build`, so every hold in a batch is a different hold and every payload
carries a marker that finds it again in ``review rejected``. Hostile identifiers are
invalid by construction, so whether a payload names a hold is decided by
:func:`named_hold` from the bytes alone, as a producer's integrator would read the
contract.
"""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from datetime import date
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

OK, DUBIOUS, BAD = 0, 1, 2
MISSING: Any = object()           # the key is left out
BRANCHES = ("ogawa", "tamari", "minori")
EVENT_TYPES = ("hold_ready", "address_registered", "address_removed", "hold_cancelled",
               "hold_picked_up")
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")



@dataclass(frozen=True)
class Slot:
    """A placeholder filled by :func:`build`: ``marker`` (formatted into ``fmt``), ``hold``,
    ``card``, ``email``, ``rid`` (the broker id), ``uuid``, ``ts``, ``tsf`` (float ms)."""
    kind: str
    fmt: str = "{}"


@dataclass(frozen=True)
class Payload:
    value: Any                 # envelope, or bare event for enqueue, with Slots inside
    level: int
    active: bool = False       # the card slot, if any, has an approved address
    ensure_ascii: bool = True
    corrupt: bytes = b""       # bytes inserted that break UTF-8 or JSON ...
    corrupt_at: float = 0.0    # ... at this fraction of the body
    truncate: bool = False     # body cut short (a JSON object cut short is never JSON)
    forged: bool = False       # for one of the worker's own actors: refused, never obeyed
    unlisted: bool = False     # the hold slot must end on no call list (see :func:`steer`)


Tagged = st.SearchStrategy[tuple[Any, int]]


def _tag(s: st.SearchStrategy[Any], level: int) -> Tagged:
    return s.map(lambda v: (v, level))


def choose(ok: st.SearchStrategy[Any], alts: list[tuple[int, st.SearchStrategy[Any]]],
           clean: bool) -> Tagged:
    """``ok`` seven times in eight, else one of the alternatives (in a clean payload only
    those of level OK). Shrinking goes towards ``ok``."""
    rest = [_tag(s, lvl) for lvl, s in alts if not clean or lvl == OK]

    @st.composite
    def go(draw: Any) -> tuple[Any, int]:
        if not rest or draw(st.integers(0, 7)) < 7:
            return draw(ok), OK
        return draw(st.one_of(rest))
    return go()


def pick(good: list[Any], bad: list[Any], clean: bool, bad_level: int = BAD) -> Tagged:
    return choose(st.sampled_from(good), [(bad_level, st.sampled_from(bad))], clean)


def _insert(base: st.SearchStrategy[str], chars: list[str]) -> st.SearchStrategy[str]:
    @st.composite
    def go(draw: Any) -> str:
        text, ch = draw(base), draw(st.sampled_from(chars))
        at = draw(st.integers(0, len(text)))
        return text[:at] + ch + text[at:]
    return go()


_WORDS = ["吾輩は猫である", "月刊 茨城の自然 12月号", "霞ヶ浦の四季", "Les Misérables",
          "ｶﾀｶﾅの本", "絵本 🐈\u200d⬛ ねこ", "夏目漱石", "山田 太郎", "O'Brien & Co."]
PLAIN = st.one_of(st.sampled_from(_WORDS), st.text(
    st.characters(categories=["L", "N", "P", "S", "Zs"]), min_size=1, max_size=24)
    .filter(lambda s: s.strip() != ""))
FORMAT_CHARS = ["\u00ad", "\u200b", "\ufeff", "\u2060"]
CONTROLS = ["\r\n", "\n", "\r", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\t"]
SURROGATES = ["\ud800", "\udfff", "\udc80"]
NON_STRINGS = st.sampled_from([0, -1, 10**30, 1.5, 1e308, True, [], {}, ["x"]])


def text(max_len: int, *, optional: bool, format_level: int, clean: bool) -> Tagged:
    """A free-text field (title, author, patron name) of at most ``max_len`` characters.
    Format characters (U+00AD, U+200B, U+FEFF) are catalogue reality: ``format_level``."""
    alts: list[tuple[int, st.SearchStrategy[Any]]] = [
        (OK, PLAIN.map(lambda s: unicodedata.normalize("NFD", s))),
        (OK, st.just("猫" * max_len)),
        (format_level, _insert(PLAIN, FORMAT_CHARS)),
        (DUBIOUS, _insert(PLAIN, ["\u202e", "\u200e"])),  # bidi marks: cleaned or refused
        (BAD, _insert(PLAIN, CONTROLS)),
        (BAD, _insert(PLAIN, SURROGATES)),
        (BAD, st.sampled_from(["", "   ", "\u3000", "猫" * (max_len + 1), "猫" * 400_000])),
        (BAD, NON_STRINGS),
        (OK if optional else BAD, st.sampled_from([None, MISSING])),
    ]
    return choose(PLAIN, alts, clean)


def ident(kind: str, clean: bool) -> Tagged:
    """An identifier slot, or something that can never be a valid identifier."""
    bad = st.sampled_from(["", " ", "H 1", "H-1\n", "-H1", "H" * 65, "ｈ１", "H\ud800",
                           "H\u200b1", "H\u00ad1", None, MISSING]) | NON_STRINGS
    return choose(st.just(Slot(kind)), [(BAD, bad)], clean)


def event_id(clean: bool) -> Tagged:
    """The payload's marker (a valid event_id), or an invalid one — most still carrying
    the marker, so that its refusal is found again in ``review rejected``."""
    fmts = st.sampled_from([" {}", "{}\n", "-{}", "{}\ud800", "{} x", "{}" + "x" * 130])
    return choose(st.just(Slot("marker")), [
        (BAD, fmts.map(lambda f: Slot("marker", f))),
        (BAD, st.sampled_from(["", None, MISSING, 7]))], clean)


def instant(clean: bool) -> Tagged:
    return choose(st.sampled_from(["2026-11-29T10:00:00+09:00", "2026-11-29T01:00:00Z",
                                   "2026-11-29T10:00:00.123456+09:00"]), [
        (DUBIOUS, st.sampled_from(["0001-01-01T00:00:00+09:00", "0001-01-01T00:00:00Z",
                                   "9999-12-31T23:59:59-12:00", "9999-12-31T23:59:59+14:00",
                                   1764378000])),
        (BAD, st.sampled_from(["2026-11-29T10:00:00", "2026-11-29", "yesterday", "",
                               "2026-13-01T00:00:00+09:00", None, MISSING])),
    ], clean)


def day(clean: bool) -> Tagged:
    future = st.dates(date(2027, 1, 1), date(2100, 12, 31)).map(date.isoformat)
    past = st.dates(date(2000, 1, 1), date(2025, 12, 31)).map(date.isoformat)
    return choose(future, [
        (OK, past),
        (DUBIOUS, st.sampled_from(["9999-12-31", "0001-01-01", "2099-12-05T00:00:00"])),
        (DUBIOUS, st.dates(date(2200, 1, 1), date(9999, 12, 31)).map(date.isoformat)),
        (BAD, st.sampled_from(["2026-02-30", "12/05", "", 20991205, None, MISSING])),
    ], clean)


def fields(spec: dict[str, Tagged], clean: bool, extra: list[str]) -> Tagged:
    """An object from tagged fields (MISSING ones left out), sometimes with an unknown
    key; its level is the highest of its parts."""
    @st.composite
    def go(draw: Any) -> tuple[dict[str, Any], int]:
        out, level = {}, OK
        for key, strat in spec.items():
            value, lvl = draw(strat)
            level = max(level, lvl)
            if value is not MISSING:
                out[key] = value
        if extra and not clean and draw(st.integers(0, 9)) == 0:
            out[draw(st.sampled_from(extra))] = "x"
            level = BAD
        return out, level
    return go()


def hold_ready(clean: bool) -> Tagged:
    item = fields({"title": text(500, optional=False, format_level=OK, clean=clean),
                   "author": text(200, optional=True, format_level=OK, clean=clean),
                   "call_number": text(64, optional=True, format_level=DUBIOUS, clean=clean),
                   "material": pick(["book", "magazine", "av"], ["Book", "dvd", None, MISSING],
                                    clean)}, clean, ["isbn"])
    bad_item = _tag(st.sampled_from([MISSING, None, "吾輩は猫である", []]), BAD)
    return fields({
        "event_id": event_id(clean),
        "type": pick(["hold_ready"], [*EVENT_TYPES[1:], "hold_readyy", "", None, MISSING, 1],
                     clean),
        "hold_id": ident("hold", clean), "card_number": ident("card", clean),
        "item": item if clean else st.one_of(item, item, item, bad_item),
        "pickup_branch": pick(list(BRANCHES), ["tokyo", "OGAWA", "", " ogawa", None, 1,
                                               MISSING], clean),
        "ready_at": instant(clean), "pickup_by": day(clean),
        "contact": pick(["email", "phone"], ["EMAIL", "mail", "", None, MISSING, ["email"]],
                        clean),
        "patron_name": text(100, optional=True, format_level=DUBIOUS, clean=clean),
    }, clean, ["pickup_brnach", "foo", "Type"])


def other_event(clean: bool) -> Tagged:
    @st.composite
    def go(draw: Any) -> tuple[dict[str, Any], int]:
        t = draw(st.sampled_from(EVENT_TYPES[1:]))
        spec = {"event_id": event_id(clean),
                "type": pick([t], ["hold_ready", "hold_readyy", None], clean)}
        if t.startswith("hold_"):
            spec["hold_id"] = ident("hold", clean)
        else:
            spec["card_number"] = ident("card", clean)
        if t == "address_registered":
            spec["email"] = choose(st.just(Slot("email")), [(BAD, st.sampled_from(
                ["not-an-address", "a@b.jp\r\nBcc: x@evil.example", "", 5, None]))], clean)
            spec["registered_at"] = instant(clean)
            spec["application_branch"] = pick(list(BRANCHES), ["tokyo", None], clean)
        if t == "address_removed":
            spec["removed_at"] = instant(clean)
        return draw(fields(spec, clean, ["foo"]))
    return go()


@st.composite
def event(draw: Any) -> tuple[dict[str, Any], int, bool]:
    """(event with Slots, level, whether its card has an approved address)."""
    clean = draw(st.integers(0, 3)) == 0  # a quarter valid through and through
    ev, level = draw(hold_ready(clean) if draw(st.integers(0, 4)) else other_event(clean))
    return ev, level, draw(st.booleans())


_ARGS = {"ONE": lambda ev: [ev], "BARE": lambda ev: ev, "TWICE": lambda ev: [ev, ev],
         "NONE": lambda ev: [], "STR": lambda ev: "x"}
_OPTIONS = {"RID": {"redis_message_id": Slot("rid")}, "NORID": {},
            "WRONGRID": {"redis_message_id": Slot("uuid")}, "INTRID": {"redis_message_id": 5},
            "FOO": {"redis_message_id": Slot("rid"), "foo": 1},
            "NORETRY": {"redis_message_id": Slot("rid"), "max_retries": 0},
            "LIST": [], "STR": "x"}


@st.composite
def envelope(draw: Any) -> Payload:
    """A dramatiq message as a raw producer writes it (README recipe), often wrong."""
    ev, ev_level, active = draw(event())
    clean = ev_level == OK and draw(st.booleans())
    t = ev.get("type")
    actor = t if isinstance(t, str) and t in EVENT_TYPES else "hold_ready"
    env, level = draw(fields({
        "queue_name": pick(["notifications"], ["other", "notifications.DQ", "notifications.XQ",
                                               "", 5, None, MISSING], clean),
        "actor_name": pick([actor], ["hold_readyy", "omitama_malformed", "omitama_gave_up", "",
                                     3, MISSING, *[x for x in EVENT_TYPES if x != actor]],
                           clean),
        "args": pick(["ONE"], ["BARE", "TWICE", "NONE", "STR", MISSING], clean),
        "kwargs": pick([{}], [{"x": 1}, [], None, MISSING], clean),
        "options": choose(st.just("RID"), [
            (OK, st.just("NORID")), (DUBIOUS, st.sampled_from(["WRONGRID", "INTRID", "FOO",
                                                                "NORETRY"])),
            (BAD, st.sampled_from(["LIST", "STR", MISSING]))], clean),
        "message_id": choose(st.just(Slot("uuid")), [
            (DUBIOUS, st.sampled_from([MISSING, ""])), (BAD, st.sampled_from([5, None]))],
            clean),
        "message_timestamp": choose(st.just(Slot("ts")), [
            (OK, st.just(MISSING)), (DUBIOUS, st.sampled_from([Slot("tsf"), 10**20, -1])),
            (BAD, st.sampled_from(["now", None, True]))], clean),
    }, clean, ["bogus", "eta_", "Queue_name"]))
    if "args" in env:
        env["args"] = _ARGS[env["args"]](ev)
    if isinstance(env.get("options"), str):
        env["options"] = _OPTIONS[env["options"]]
    level = max(level, ev_level)
    kind = draw(st.integers(0, 11)) if not clean else 0
    if kind == 4:    # a message for the worker's own actors, or options that send one
        return draw(st.one_of(forged(env, ev, active), steer(ev, active)))
    if kind == 1:    # a byte that is not UTF-8 (or a CESU-8 surrogate) somewhere in it
        return Payload(env, BAD, active, draw(st.booleans()),
                       corrupt=draw(st.sampled_from([b"\xff", b"\x80", b"\xc3(", b"\xc0\x80",
                                                     b"\xed\xa0\x80"])),
                       corrupt_at=draw(st.floats(0, 1)))
    if kind == 2:    # cut short
        return Payload(env, BAD, active, truncate=True, corrupt_at=draw(st.floats(0, 0.99)))
    if kind == 3:    # not an envelope at all
        junk = draw(st.sampled_from([ev, [Slot("marker"), 1], Slot("marker", "not json {}"),
                                     Slot("marker", "{}")]))
        return Payload(junk, BAD, active)
    return Payload(env, level, active, draw(st.booleans()))


INTERNAL = ("omitama_digest", "omitama_gave_up", "omitama_malformed")


def _message(actor: str, args: Any, options: dict[str, Any]) -> dict[str, Any]:
    return {"queue_name": "notifications", "actor_name": actor, "args": args, "kwargs": {},
            "options": {"redis_message_id": Slot("rid"), **options},
            "message_id": Slot("uuid"), "message_timestamp": Slot("ts")}


@st.composite
def forged(draw: Any, env: dict[str, Any], ev: Any, active: bool) -> Payload:
    """A producer's message for one of the worker's own actors, in their argument shapes
    (worker/queue/internal.py): a give-up wrapping a message (with a forged traceback)
    or an event, a malformed-message record, a digest window's message; unsigned or wrongly signed. Each must be
    refused: kept once, and the hold inside listed, never mailed nor listed as
    worker_error."""
    sig = draw(st.sampled_from([{}, {"omitama_sig": "0" * 64}, {"omitama_sig": "forged"},
                                {"omitama_sig": 5}]))
    info = draw(st.sampled_from([{}, {"retries": 8, "max_retries": 8}]))
    kind = draw(st.integers(0, 3))
    if kind == 3:  # a digest window's message wrapping the event: sent early, were it obeyed
        msg = _message("omitama_digest", [ev], sig)
    elif kind == 0:
        inner = {**env, "options": {"traceback": "  File x\nForgedError: forged"}}
        msg = _message("omitama_gave_up", [inner, info], sig)
    elif kind == 1:
        msg = _message("omitama_gave_up", [ev, info], sig)
    else:
        msg = _message("omitama_malformed", [Slot("marker", "forged raw {}"),
                                             draw(st.sampled_from(["forged problem", ""]))], sig)
    return Payload(msg, BAD, active, draw(st.booleans()), forged=True)


@st.composite
def steer(draw: Any, ev: Any, active: bool) -> Payload:
    """A valid hold_cancelled whose options would make dramatiq send a give-up for the
    hold slot (``pipe_target``, ``on_success``, ...), which our worker would sign: the
    options are ignored, the event runs as usual, and the hold slot is never listed."""
    inner = _message("omitama_gave_up", [_message("hold_ready", [ev], {}), {"retries": 8}], {})
    options = draw(st.sampled_from([
        {"pipe_target": inner}, {"on_success": "omitama_gave_up"},
        {"on_success": "omitama_malformed", "on_retry_exhausted": "omitama_gave_up"},
        {"retries": "x", "eta": 10 ** 30, "max_retries": "x", "min_backoff": "x"}]))
    event = {"event_id": Slot("marker"), "type": "hold_cancelled", "hold_id": Slot("uuid")}
    return Payload(_message("hold_cancelled", [event], options), OK, active, unlisted=True)


@st.composite
def line(draw: Any) -> Payload:
    """One line for ``omitama-notify enqueue``: an event, or a line that is not one."""
    ev, level, active = draw(event())
    kind = draw(st.integers(0, 9))
    if kind == 1:
        return Payload(ev, BAD, active, draw(st.booleans()),
                       corrupt=draw(st.sampled_from([b"\xff", b"\x80", b"\xc3(", b"\xed\xa0\x80"])),
                       corrupt_at=draw(st.floats(0, 1)))
    if kind == 2:
        return Payload(draw(st.sampled_from([Slot("marker", "not json {}"), [Slot("marker")]])),
                       BAD, active)
    return Payload(ev, level, active, draw(st.booleans()))


# -- from drawn payloads to bytes, and what the bytes mean -------------------------

@dataclass
class Ids:
    """The concrete values a payload's Slots became."""
    marker: str
    hold: str
    card: str
    email: str
    rid: str


def ids_for(run: str, i: int) -> Ids:
    # each ends in "z" so that no id is a prefix of another (x1z, x10z)
    return Ids(f"m{run}x{i}z", f"H{run}x{i}z", f"C{run}x{i}z", f"p{run}x{i}z@example.jp",
               str(uuid.uuid4()))


def _fill(value: Any, ids: Ids, now_ms: int) -> Any:
    if isinstance(value, Slot):
        return {"marker": lambda: value.fmt.format(ids.marker), "hold": lambda: ids.hold,
                "card": lambda: ids.card, "email": lambda: ids.email, "rid": lambda: ids.rid,
                "uuid": lambda: str(uuid.uuid4()), "ts": lambda: now_ms,
                "tsf": lambda: now_ms + 0.25}[value.kind]()
    if isinstance(value, dict):
        return {k: _fill(v, ids, now_ms) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids, now_ms) for v in value]
    return value


def build(p: Payload, ids: Ids, now_ms: int) -> bytes:
    value = _fill(p.value, ids, now_ms)
    if isinstance(value, str) and not isinstance(p.value, Slot):
        value = json.dumps(value)
    body = (value if isinstance(value, str) else json.dumps(
        value, ensure_ascii=p.ensure_ascii, separators=(",", ":"))
    ).encode("utf-8", "surrogatepass")
    if isinstance(p.value, Slot):  # a junk line: its text as is
        body = value.encode()
    if p.truncate:
        body = body[:int(len(body) * p.corrupt_at)]
    if p.corrupt:
        at = int(len(body) * p.corrupt_at)
        body = body[:at] + p.corrupt + body[at:]
    return body


def decode(body: bytes) -> Any:
    """The JSON value of ``body`` as the contract reads it (strict UTF-8), or MISSING."""
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError:
        return MISSING


def _ident(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 64 and _IDENT.fullmatch(v) is not None


def names_hold(ev: Any, actor: Any = "hold_ready") -> str | None:
    """The hold an event names for sure — valid hold, card and branch, meant as a
    hold_ready (its type says so, or the actor does and the type names no other) — or None."""
    if not isinstance(ev, dict):
        return None
    t = ev.get("type")
    if t != "hold_ready" and not (actor == "hold_ready" and not (
            isinstance(t, str) and t in EVENT_TYPES)):
        return None
    if _ident(ev.get("hold_id")) and _ident(ev.get("card_number")) and \
            ev.get("pickup_branch") in BRANCHES:
        return ev["hold_id"]
    return None


def envelope_names_hold(body: bytes) -> str | None:
    env = decode(body)
    if not isinstance(env, dict):
        return None
    args, actor = env.get("args"), env.get("actor_name")
    if actor == "omitama_gave_up" and isinstance(args, list) and len(args) == 2 and \
            isinstance(args[0], dict):
        # a forged give-up: the event it wraps, or the message it wraps the event in
        inner = args[0]
        if "type" not in inner and "actor_name" in inner and isinstance(inner.get("args"), list):
            args, actor = inner["args"], inner["actor_name"]
        else:
            args = args[:1]
    if not (isinstance(args, list) and len(args) == 1):
        return None
    return names_hold(args[0], actor)


def must_mail(ev: dict[str, Any], active: bool, today: date) -> bool:
    """For a valid hold_ready: whether it must be mailed (else listed)."""
    return ev.get("contact") == "email" and active and date.fromisoformat(ev["pickup_by"]) > today
