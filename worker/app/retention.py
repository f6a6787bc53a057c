"""The purge: remove what is past its retention (``purge``, and the worker once a day).

Steps, in order (what each keeps and for how long: worker/holds/retention.py and the
table in docs/operations.md):

1. holds whose service is over lose title, author and patron name; call-list entries
   past their pickup window go;
2. records of calls made, delivery failures, the bounce-mail log (with its dedup
   fingerprints) and each patron's audit log lose their entries older than their
   setting, oldest first;
3. refused events older than ``refused_days`` go, raw payload and all; a card's list
   of recent notices forgets holds whose record has expired;
4. outbox .eml files older than ``outbox_days`` are deleted, and, with a Maildir bounce
   mailbox, the mails the intake moved to ``Processed`` older than ``bounces_days``
   (an IMAP mailbox: the mail server's own expiry, docs/operations.md);
5. days of the library's statistics older than ``stats_days`` (counts, no personal data).

Every step is idempotent and safe to run in two processes at once: each thing is
removed, and counted, by one of them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from ..holds.retention import Kind, cutoff, cutoffs
from ..jdate import now_tokyo
from ..settings import Settings
from ..store.core import Store

log = logging.getLogger(__name__)


async def purge(store: Store, settings: Settings, *, dry_run: bool = False,
                now: datetime | None = None) -> dict[Kind, int]:
    """Remove (with ``dry_run``: count) what is past its retention; counts by kind."""
    now = now or now_tokyo()
    c = cutoffs(now, settings.retention)
    rs = store.retention
    done: dict[Kind, int] = {}
    done[Kind.HOLD_DETAILS], done[Kind.CALL_ENTRY] = await rs.close_over_holds(now, dry_run)
    done[Kind.CALLED] = await rs.trim_called(c.called, dry_run)
    done[Kind.FAILURE] = await rs.trim_failures(c.failures, dry_run)
    done[Kind.BOUNCE_LOG] = await rs.trim_bounce_log(c.bounces, dry_run)
    done[Kind.AUDIT] = await rs.trim_audits(c.audit, dry_run)
    done[Kind.REFUSED] = await rs.drop_refused(c.refused, dry_run)
    done[Kind.RECENT_NOTICE] = await rs.prune_recent_notices(dry_run)
    done[Kind.OUTBOX] = purge_files(settings.outbox_dir, "*.eml", c.outbox, dry_run)
    done[Kind.BOUNCE_MAIL] = sum(
        purge_files(folder / sub, "*", cutoff(now, settings.retention.bounces_days), dry_run)
        for folder in _processed_maildir(settings) for sub in ("cur", "new"))
    done[Kind.STATS_DAY] = await store.stats.drop_before(
        cutoff(now, settings.retention.stats_days).date(), dry_run)
    return done


def _processed_maildir(settings: Settings) -> list[Path]:
    """The Maildir folder ``bounces watch`` moves ingested mails to (worker/mailbox/)."""
    url = settings.bounces.mailbox
    if not url.startswith("maildir:"):
        return []
    return [settings.path(Path(url[len("maildir:"):])) / ".Processed"]


def purge_files(folder: Path, pattern: str, before: datetime, dry_run: bool) -> int:
    """Delete the files of ``folder`` last written before ``before``; how many this call
    deleted (a file another purge deleted first is not counted)."""
    n = 0
    if not folder.is_dir():
        return 0
    limit = before.timestamp()
    for f in folder.glob(pattern):
        try:
            if not f.is_file() or f.stat().st_mtime >= limit:
                continue
            if not dry_run:
                f.unlink()
        except FileNotFoundError:
            continue
        n += 1
    return n


async def daily_purge(store: Store, settings: Settings, who: str,
                      now: datetime | None = None) -> dict[Kind, int] | None:
    """The day's purge, if nobody has taken it yet today (None when another did)."""
    now = now or now_tokyo()
    rs = store.retention
    if not await rs.take_day(now.date().isoformat(), who):
        return None
    done = await purge(store, settings, now=now)
    await rs.save_report({"at": now.isoformat(timespec="seconds"), "by": who,
                          **{kind.value: n for kind, n in done.items()}})
    # counts only: what was removed is gone, and its names must not reach a log
    log.info("purge: %s", ", ".join(f"{kind.value} {n}" for kind, n in done.items()))
    return done
