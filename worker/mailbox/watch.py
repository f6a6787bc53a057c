"""``bounces watch``: ingest every mail of the bounce mailbox once, then wait for more.

One pass (:func:`run_pass`) reads each waiting mail, ingests it, and moves it out of the
inbox only after it was recorded. Redis trouble stops the pass with the mail left where
it is (the next pass tries again); any other failure on one mail moves that mail to
``ForStaff`` so it cannot block the ones after it. An entry that can be neither read nor
moved is skipped with a back-off (:mod:`.aside`): the watch never spins on it.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable


from ..errors import StoreError
from ..app.ingest import MAX_MAIL_BYTES, ingest_one
from ..settings import Settings
from ..store.client import RedisError
from ..store.core import Store
from ..store.watch_lock import LeaseUnreachable, sole_watcher
from . import FOR_STAFF, PROCESSED, Mailbox, open_mailbox
from .aside import SetAside

log = logging.getLogger(__name__)


@dataclass
class Counts:
    mails: int = 0
    processed: int = 0
    for_staff: int = 0
    duplicates: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


def understood(rows: list[dict[str, Any]]) -> bool:
    """A bounce, a known automatic mail (vacation, delay, delivery report) or a duplicate;
    anything else may be a person writing to the bounce address: staff should read it."""
    return any(r.get("duplicate") or r.get("is_bounce") or r.get("reason") for r in rows)


def _unreadable(box: Mailbox, mail_id: str, error: OSError, c: Counts, aside: SetAside) -> None:
    """Set aside a mail that cannot be read (a dangling symlink, no permission): into
    ForStaff, else skipped for a while; one that is gone was moved by another reader."""
    try:
        box.move(mail_id, FOR_STAFF)
    except FileNotFoundError:
        log.info("bounce mailbox: %s is gone (moved by another reader)", mail_id)
        return
    except OSError as e:
        log.warning("bounce mailbox: cannot read %s (%s) nor move it to %s (%s); left where "
                    "it is, tried again in %g s", mail_id, error, FOR_STAFF, e, aside.add(mail_id))
        return
    log.warning("bounce mailbox: cannot read %s: %s; kept in %s", mail_id, error, FOR_STAFF)
    aside.forget(mail_id)
    c.for_staff += 1


def run_pass(box: Mailbox, ingest: Callable[[str, bytes], list[dict[str, Any]]],
             stop: threading.Event | None = None, limit: int | None = None,
             aside: SetAside | None = None) -> Counts:
    c = Counts()
    aside = aside or SetAside()
    for mail_id in box.pending():
        if (stop and stop.is_set()) or (limit is not None and c.mails >= limit):
            break
        if aside.blocks(mail_id):
            continue
        c.mails += 1
        try:
            raw = box.read(mail_id)
        except OSError as e:
            _unreadable(box, mail_id, e, c, aside)
            continue
        if len(raw) > MAX_MAIL_BYTES:
            rows: list[dict[str, Any]] = []
        else:
            try:
                rows = ingest(f"{box.name}:{mail_id}", raw)
            except (RedisError, StoreError, ConnectionError):
                raise  # the mail stays in the inbox; the next pass retries it
            except Exception as e:  # noqa: BLE001 - one bad mail must not block the rest
                log.exception("bounce mailbox: ingesting %s failed: %s", mail_id, e)
                rows = []
        c.rows += rows
        c.duplicates += sum(bool(r.get("duplicate")) for r in rows)
        if understood(rows):
            box.move(mail_id, PROCESSED)
            c.processed += 1
        else:
            box.move(mail_id, FOR_STAFF)
            c.for_staff += 1
    return c


def watch_alone(settings: Settings, *, once: bool = False, limit: int | None = None,
                stop: threading.Event, report: Callable[[Counts], None]) -> None:
    """:func:`watch` as the one watch of its mailbox (``store/watch_lock.py``). Redis away
    when the watch starts is waited for as during a pass — the mail stays in the inbox, a
    line says so — instead of ending a service that systemd would only start again;
    ``once`` reports it and stops."""
    where = safe_mailbox(settings.bounces.mailbox)
    while not stop.is_set():
        try:
            with sole_watcher(settings.redis, settings.redis.key_prefix,
                              settings.bounces.mailbox, stop.set):
                watch(settings, once=once, limit=limit, stop=stop, report=report)
            return
        except LeaseUnreachable as e:
            if once:
                raise
            log.warning("bounce mailbox %s: Redis unreachable (%s); the mail stays in the "
                        "inbox, trying again in %g s", where, e, settings.bounces.poll_s)
            stop.wait(settings.bounces.poll_s)


def watch(settings: Settings, *, once: bool = False, limit: int | None = None,
          stop: threading.Event | None = None,
          report: Callable[[Counts], None] = lambda c: None) -> Counts:
    """Run passes until ``stop`` is set (or one pass with ``once``). Mailbox connection
    errors are logged and retried after ``[bounces] poll_s``."""
    stop = stop or threading.Event()
    loop = asyncio.new_event_loop()
    store = Store.from_settings(settings)
    total = Counts()

    def ingest(name: str, raw: bytes) -> list[dict[str, Any]]:
        return loop.run_until_complete(ingest_one(store, settings, name, raw))

    box: Mailbox | None = None
    aside = SetAside()
    where = safe_mailbox(settings.bounces.mailbox)
    again = settings.bounces.poll_s
    log.info("bounce mailbox %s: watching (new mail looked for at least every %g s)", where, again)
    try:
        while not stop.is_set():
            try:
                if box is None:
                    box = open_mailbox(settings)
                    setattr(box, "stop", stop)
                c = run_pass(box, ingest, stop, limit, aside)
                total.mails += c.mails
                total.processed += c.processed
                total.for_staff += c.for_staff
                total.duplicates += c.duplicates
                total.rows += c.rows
                if c.mails:
                    log.info("bounce mailbox %s: %d mail(s): %d processed, %d kept in %s, "
                             "%d already ingested", where, c.mails, c.processed, c.for_staff,
                             FOR_STAFF, c.duplicates)
                report(c)
                if once:
                    break
                box.wait(again, aside.blocked())
            except (RedisError, StoreError) as e:
                if once:
                    raise
                # the mailbox is fine: the mail in hand stays in the inbox for the next pass
                log.warning("bounce mailbox %s: Redis unreachable (%s); the mail stays in the "
                            "inbox, trying again in %g s", where, e, again)
                stop.wait(again)
            except (OSError, imaplib.IMAP4.error) as e:
                if once:
                    raise
                log.warning("bounce mailbox %s unreachable: %s; trying again in %g s",
                            where, e, again)
                if box is not None:
                    box.close()
                    box = None
                stop.wait(again)
    finally:
        if box is not None:
            box.close()
        loop.run_until_complete(store.close())
        loop.close()
    return total


def safe_mailbox(url: str) -> str:
    """The mailbox as logs name it: no user (the part before the host's "@")."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}" if sep else url


def check_mailbox(settings: Settings) -> str:
    """``check``: the bounce mailbox is reachable and readable (when one is set)."""
    if not settings.bounces.mailbox:
        return "no bounce mailbox set ([bounces] mailbox): bounces only by `bounces ingest`"
    box = open_mailbox(settings)
    try:
        return box.describe()
    finally:
        box.close()
