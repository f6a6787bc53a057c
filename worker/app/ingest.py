"""``bounces ingest``: read bounce mails, trace each to its notice, apply the consequences.

Sources: one file, a Maildir, an mbox, a folder of files, or standard input (an MTA
alias can pipe the lib@ mailbox's bounces here). Each mail is recorded in the ingest
log whatever it is; the same mail ingested twice counts once (its Message-ID, else
its bytes, is the fingerprint, marked once the mail's consequences are recorded).
Non-bounces (auto-replies, delivery reports, delays) are recorded and change nothing.

Tracing: the VERP token of the return path the bounce came back to (see
:mod:`worker.mail.verp`; the delivering MTA records it in Delivered-To/X-Original-To); else
the original Message-ID quoted in the bounce (message/rfc822, text/rfc822-headers,
In-Reply-To, References — the classifier finds it), which names our notice and so the
hold and the patron; else the failed recipient address, which leads to the cards
holding that address and their most recent mailed notice. How far the result is
believed — whether it may suspend and re-phone — is :mod:`worker.bounces.trust`'s rule;
each row and failure record says what traced it and whether it was verified.
"""

from __future__ import annotations

import hashlib
import logging
import mailbox
import re
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from ..errors import InputError, StoreError
from ..masking import mask_address
from .bounce_effects import address_key, apply_failure
from ..store.bounces import BounceStore
from ..bounces import BounceResult, classify_mail
from ..contact import Confirmation
from ..bounces.trust import MailFacts, TokenState, Traced, Trust, assess, mail_facts
from ..mail.compose import token_of
from ..jdate import now_tokyo
from ..settings import Settings
from ..store.client import RedisError
from ..store.core import Store
from ..mail.verp import Sent, token_in
from ..store.verp import sent_for
from ..store.vocab import HoldStatus

log = logging.getLogger(__name__)

MAX_MAIL_BYTES = 25 * 1024 * 1024
_MB = MAX_MAIL_BYTES // (1024 * 1024)
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]{1,250}>)", re.I | re.M)


def read_sources(path: str, stdin: BinaryIO | None = None, *,
                 top: bool = True) -> Iterator[tuple[str, bytes | Exception]]:
    """(name, raw bytes) per mail; an unreadable one yields (name, error) and reading goes
    on. Raises InputError, before anything is read, for stdin or a single mail file over
    the size limit: cutting it would classify a stump and lose what follows."""
    if path == "-":
        data = (stdin.read(MAX_MAIL_BYTES + 1) if stdin else b"")
        if len(data) > MAX_MAIL_BYTES:  # never classify a stump: an mbox would lose the rest
            raise InputError(f"<stdin>: the input is larger than {_MB} MB; nothing was ingested. "
                             "Save it to a file and ingest that (an mbox or a Maildir may be "
                             f"of any size, each mail at most {_MB} MB)")
        yield from _split_bytes("<stdin>", data)
        return
    p = Path(path)
    try:
        # one mail named on the command line: refused as a whole, like stdin (in a folder,
        # an over-size file is one unreadable mail and the others are ingested)
        if top and p.is_file() and p.stat().st_size > MAX_MAIL_BYTES and not _is_mbox(p):
            raise InputError(f"{path}: larger than {_MB} MB, the most a mail may be; "
                             "nothing was ingested")
        if p.is_dir():
            if (p / "cur").is_dir() or (p / "new").is_dir():
                maildir = mailbox.Maildir(str(p), factory=None, create=False)
                for key in sorted(maildir.keys()):
                    yield from _one(f"{path}:{key}", lambda k=key: maildir.get_bytes(k))
            else:
                for f in sorted(x for x in p.iterdir() if x.is_file()):
                    yield from read_sources(str(f), top=False)
            return
        if _is_mbox(p):
            box = mailbox.mbox(str(p), factory=None, create=False)
            for key in box.keys():
                yield from _one(f"{path}#{key}", lambda k=key: box.get_bytes(k))
            return
        yield from _one(path, lambda: p.read_bytes())
    except OSError as e:
        yield path, e


def _is_mbox(p: Path) -> bool:
    with open(p, "rb") as fh:
        return fh.read(5) == b"From "


def _one(name: str, read: Any) -> Iterator[tuple[str, bytes | Exception]]:
    try:
        data = read()
    except (OSError, KeyError, ValueError) as e:
        yield name, e
        return
    yield name, (data if len(data) <= MAX_MAIL_BYTES else ValueError("mail larger than 25 MB"))


def _split_bytes(name: str, data: bytes) -> Iterator[tuple[str, bytes | Exception]]:
    if not data.startswith(b"From "):
        yield name, data
        return
    with tempfile.NamedTemporaryFile(suffix=".mbox") as tmp:
        tmp.write(data)
        tmp.flush()
        for i, item in enumerate(read_sources(tmp.name)):
            yield f"{name}#{i}", item[1]


def mail_fingerprint(raw: bytes) -> str:
    """What identifies one ingested mail (``bounces:seen``): its Message-ID, so the same
    bounce read again from another copy counts once; without one, the SHA-256 of its
    bytes. Both under "mid:", as stored since the start (so never change it)."""
    m = _MESSAGE_ID.search(raw[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0])
    return "mid:" + (m[1].decode("ascii", "replace") if m else hashlib.sha256(raw).hexdigest())


@dataclass(frozen=True)
class Trace:
    how: Traced                       # what traced it: verp, message-id, address, none
    card: str | None = None
    hold_id: str | None = None
    hold: dict[str, str] | None = None
    sent: Sent | None = None          # what the mail's token was issued for


async def trace(store: Store, settings: Settings, r: BounceResult, sent: Sent | None = None
                ) -> Trace:
    """Trace one failed recipient: the VERP token first (``sent``), then our
    Message-ID quoted in the bounce (a notice's names its hold; a reminder's or
    confirmation's, what it was sent for), then the failed address."""
    if sent is not None:
        hold = await store.get_hold(sent.hold_id) if sent.hold_id else None
        return Trace("verp", sent.card, sent.hold_id or None, hold or None, sent)
    mid, domain = r.original_message_id or "", settings.mail.message_id_domain
    token = token_of(mid, domain)
    if token:
        hold_id = await store.hold_for_token(token)
        if hold_id:
            hold = await store.get_hold(hold_id)
            return Trace("message-id", hold.get("card_number"), hold_id, hold)
    # a reminder's or confirmation's: its token names what it was sent for
    token = token_of(mid, domain, "remind") or token_of(mid, domain, "reg")
    mailed = await sent_for(store, token) if token else None
    if mailed is not None:
        hold = await store.get_hold(mailed.hold_id) if mailed.hold_id else None
        return Trace("message-id", mailed.card, mailed.hold_id or None, hold or None, mailed)
    if not r.recipient:
        return Trace("none")
    cards = sorted(await store.contacts.cards_with(address_key(r.recipient)))
    for card in cards:
        for hold_id in await store.bounces.recent_holds(card):
            hold = await store.get_hold(hold_id)
            if hold.get("status") == HoldStatus.SENT:
                return Trace("address", card, hold_id, hold)
    return Trace("address", cards[0]) if cards else Trace("none")


async def _return_path(store: Store, settings: Settings, facts: MailFacts
                       ) -> tuple[TokenState, Sent | None]:
    token = token_in(settings.mail.return_path, facts.envelope_to)
    if token is None:
        return "absent", None
    sent = await sent_for(store, token)
    return ("valid", sent) if sent else ("unknown", None)


async def ingest_one(store: Store, settings: Settings, name: str, raw: bytes) -> list[dict[str, Any]]:
    """Ingest one mail once, whichever way and however often it comes in (the same mail
    read by two readers at once is taken in by one: :meth:`BounceStore.take`)."""
    bs = store.bounces
    fp = mail_fingerprint(raw)
    if not await bs.take(fp):
        dup: dict[str, Any] = {"file": name, "duplicate": True, "fingerprint": fp}
        await bs.log(dup)
        return [dup]
    try:
        rows, stored = await _ingest(store, settings, bs, fp, name, raw)
    except BaseException:
        with suppress(RedisError, StoreError, OSError):
            await bs.let_go(fp)
        raise
    # marked only now: a crash before this line (a killed process, Redis gone) means
    # the mail is ingested again, at worst leaving a second failure row; marking it
    # first would lose a real bounce for good (suspension and re-phoning are idempotent).
    # A mail of which nothing was stored (over the cap) is not marked either: read
    # again, it is only counted again
    if stored or not rows:
        await bs.mark_seen(fp)
    else:
        await bs.let_go(fp)
    return rows


async def _ingest(store: Store, settings: Settings, bs: BounceStore, fp: str, name: str,
                  raw: bytes) -> tuple[list[dict[str, Any]], int]:
    facts = mail_facts(raw)
    token_state, sent = await _return_path(store, settings, facts)
    rows, stored = [], 0
    day = now_tokyo().date().isoformat()
    for r in classify_mail(raw):
        t = await trace(store, settings, r, sent) if r.is_bounce else Trace("none")
        trust = assess(t.how, token_state, facts)
        address = t.sent.address if t.sent else r.recipient
        row: dict[str, Any] = {"file": name, "is_bounce": r.is_bounce, "reason": r.reason,
                               "permanent": r.permanent, "status": r.status,
                               "recipient": mask_address(address) if address else None,
                               "traced": t.how if r.is_bounce else "",
                               "card_number": t.card, "hold_id": t.hold_id}
        if r.is_bounce:
            row.update(trust=trust.label, evidence=trust.evidence)
        rows.append(row)
        if r.is_bounce and await _over_cap(bs, settings, trust, address, day):
            # a flood of forged or untraceable bounces: a counter, not 90 days of rows
            row["action"] = OVER_CAP
            await bs.over_cap()
            continue
        if r.is_bounce and r.permanent and address:
            effect = await apply_failure(store, settings, r, card=t.card, hold_id=t.hold_id,
                                         address=address, source="bounce mail", hold=t.hold,
                                         trust=trust, traced=t.how)
            row.update(suspended=effect["suspended"], hold_action=effect["hold"],
                       score=effect["score"])
            if t.sent and t.sent.kind == "registration" and trust.verified:
                await store.contacts.set_confirmation(t.card or "", t.sent.event_id,
                                                       Confirmation.BOUNCED,
                                                       f"{r.reason} {r.status or ''}".strip())
        else:
            if r.is_bounce:
                await bs.count(r.reason)
            row["action"] = "recorded only"
        await bs.log({**row, "fingerprint": fp})
        stored += 1
    return rows, stored


OVER_CAP = "counted only (unverified, over the daily cap)"


async def _over_cap(bs: BounceStore, settings: Settings, trust: Trust, address: str | None,
                    day: str) -> bool:
    """Verified bounces always count; unverified ones (forged, or traced by the address
    only, or not at all) are stored up to ``[bounces] unverified_per_day`` per address and
    day; past that only counted (``bounces:overcap``): a flood cannot fill Redis."""
    if trust.verified:
        return False
    n = await bs.weak_today(address_key(address) if address else "-", day)
    if n == settings.bounces.unverified_per_day + 1:
        log.warning("unverified bounces for %s: more than %d today; the rest of the day they "
                    "are only counted", mask_address(address) if address else "no address",
                    settings.bounces.unverified_per_day)
    return n > settings.bounces.unverified_per_day
