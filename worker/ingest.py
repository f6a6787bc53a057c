"""``bounces ingest``: read bounce mails, trace each to its notice, apply the consequences.

Sources: one file, a Maildir, an mbox, a folder of files, or standard input (an MTA
alias can pipe the lib@ mailbox's bounces here). Each mail is recorded in the ingest
log whatever it is; the same mail ingested twice counts once (its Message-ID, else
its bytes, is the fingerprint). Non-bounces (auto-replies, delivery reports,
delays) are recorded and change nothing.

Tracing: the original Message-ID quoted in the bounce (message/rfc822,
text/rfc822-headers, In-Reply-To, References — the classifier finds it) names our
notice and so the hold and the patron; without it, the failed recipient address
leads to the cards holding that address and their most recent mailed notice.
"""

from __future__ import annotations

import hashlib
import mailbox
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from .errors import InputError
from .masking import mask_address
from .bounce_effects import address_key, apply_failure
from .bounce_store import BounceStore
from .bounces import BounceResult, classify_mail
from .compose import token_of
from .registry import Registry
from .settings import Settings
from .store import Store

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


def fingerprint(raw: bytes) -> str:
    m = _MESSAGE_ID.search(raw[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0])
    return "mid:" + (m[1].decode("ascii", "replace") if m else hashlib.sha256(raw).hexdigest())


async def trace(store: Store, settings: Settings, r: BounceResult
                ) -> tuple[str | None, str | None, dict[str, str] | None, str]:
    """(card, hold_id, hold record, how) for one failed recipient."""
    token = token_of(r.original_message_id or "", settings.mail.message_id_domain)
    if token:
        hold_id = await store.hold_for_token(token)
        if hold_id:
            hold = await store.get_hold(hold_id)
            return hold.get("card_number"), hold_id, hold, "message-id"
    if not r.recipient:
        return None, None, None, "none"
    cards = sorted(await Registry(store).cards_with(address_key(r.recipient)))
    for card in cards:
        for hold_id in await BounceStore(store).recent_holds(card):
            hold = await store.get_hold(hold_id)
            if hold.get("status") == "sent":
                return card, hold_id, hold, "address"
    return (cards[0] if cards else None), None, None, "address" if cards else "none"


async def ingest_one(store: Store, settings: Settings, name: str, raw: bytes) -> list[dict[str, Any]]:
    bs = BounceStore(store)
    fp = fingerprint(raw)
    if not await bs.first_time(fp):
        dup: dict[str, Any] = {"file": name, "duplicate": True, "fingerprint": fp}
        await bs.log(dup)
        return [dup]
    rows = []
    for r in classify_mail(raw):
        card, hold_id, hold, how = await trace(store, settings, r) if r.is_bounce else (None, None, None, "")
        row: dict[str, Any] = {"file": name, "is_bounce": r.is_bounce, "reason": r.reason,
                               "permanent": r.permanent, "status": r.status,
                               "recipient": mask_address(r.recipient) if r.recipient else None,
                               "traced": how, "card_number": card, "hold_id": hold_id}
        if r.is_bounce and r.permanent and r.recipient:
            effect = await apply_failure(store, settings, r, card=card, hold_id=hold_id,
                                         address=r.recipient, source="bounce mail", hold=hold)
            row.update(suspended=effect["suspended"], hold_action=effect["hold"],
                       score=effect["score"])
        else:
            if r.is_bounce:
                await bs.count(r.reason)
            row["action"] = "recorded only"
        await bs.log({**row, "fingerprint": fp})
        rows.append(row)
    return rows
