"""What of each record is kept, and until when (pure).

The Library Freedom Declaration (図書館の自由に関する宣言): what a patron reads is kept
secret, and records of it are not kept once the service that needed them is done.

1. A hold is *open* while the worker may still have to tell the patron (sending,
   retrying, sent, on the call list) and its pickup window has not closed. It *closes*
   when it is picked up, cancelled, the patron was phoned (``called``), or its pickup
   window passed (:func:`hold_closed`).
2. When it closes, the title, author, call number, patron name and phone go from every
   record at once (:data:`HOLD_PERSONAL_FIELDS`: the stored event, the call-list entry) —
   except, on a hold staff marked as phoned, the call-list entry and the event, kept while
   the staff page offers to undo the mark (:data:`UNDO_S`: a misclick comes back with
   name, title and phone), then dropped by the next purge (:func:`strip_fields`). What
   remains — hold id, card number, branch, outcome and dates — lives ``[retention]
   hold_days`` past the pickup window (the record's Redis lifetime,
   :func:`retention_s`).
3. Lists kept for staff and audit (``called``, failures, bounce-mail log, each patron's
   audit log) lose their entries oldest first once older than their setting
   (:func:`cutoff`); refused events, raw payload and all, after ``refused_days``; outbox
   files after ``outbox_days``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Mapping

from ..settings import RetentionSettings
from .policy import pickup_deadline

# Fields of a hold's record that carry what the patron reads or who they are: the event
# JSON (title, author, call number, patron name and phone), the call-list entry kept for
# "uncall" (title), and free text a relay or a refusal may have quoted an address into.
HOLD_PERSONAL_FIELDS = ("event", "called_entry", "last_error", "relay_reply")
# How long the staff page offers to undo "called" (a misclick is noticed the same day):
# until then what the entry shows is kept on the hold — the call-list entry (title) and
# the event (the patron's name and phone)
UNDO_S = 24 * 3600
UNDO_KEEPS = ("event", "called_entry")
# A hold listed from a refused event may have no known last day: it counts as closed
# this long after it was listed (the library's longest pickup window, with a margin).
UNKNOWN_PICKUP_DAYS = 14
# statuses after which nothing more is sent or phoned about the hold, and of a hold the
# worker is still working on (never touched by the purge): values of the store's
# HoldStatus (worker/store/vocab.py; tests/test_retention_rules.py keeps them in step)
CLOSED_STATUSES = frozenset({"cancelled", "picked_up", "called"})
BUSY_STATUSES = frozenset({"sending", "retrying"})
# the ``closed`` field of a hold whose pickup window passed (the others: its status)
EXPIRED = "expired"


class Kind(StrEnum):
    """What the purge removes, as ``purge --json`` names it."""

    HOLD_DETAILS = "hold_details"      # title/name fields dropped from a closed hold's record
    CALL_ENTRY = "call_entry"          # a call-list entry whose pickup window passed
    CALLED = "called"                  # records of calls made, past called_days
    AUDIT = "audit"                    # patron audit entries, past audit_days
    FAILURE = "failure"                # delivery failures, past failures_days
    BOUNCE_LOG = "bounce_log"          # ingested bounce mails, past bounces_days
    REFUSED = "refused"                # refused events (raw payload), past refused_days
    OUTBOX = "outbox"                  # outbox .eml files, past outbox_days
    RECENT_NOTICE = "recent_notice"    # a card's recent hold ids whose hold record expired
    BOUNCE_MAIL = "bounce_mail"        # mails in the Maildir's Processed, past bounces_days
    STATS_DAY = "stats_day"            # a day of the library's statistics, past stats_days


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def hold_closed(hold: Mapping[str, str], now: datetime) -> bool:
    """Whether the service of this hold is over: see 1. in the module docstring. A hold
    the worker is busy with is never closed here (its event is still needed to send)."""
    status = hold.get("status")
    if not status or status in BUSY_STATUSES:
        return False
    if hold.get("closed") or status in CLOSED_STATUSES:
        return True
    last = _day(hold.get("pickup_by"))
    if last is None:
        first_ms = int(hold.get("first_ms") or 0)
        listed = datetime.fromtimestamp(first_ms / 1000, now.tzinfo).date() if first_ms else None
        if listed is None:
            return False
        last = listed + timedelta(days=UNKNOWN_PICKUP_DAYS)
    return now >= pickup_deadline(last)


# What a hold's record keeps after ``patron forget``: what names the hold and where it
# stands, nothing that names the patron (no card number, no event, no tokens).
FORGOTTEN_HOLD_FIELDS = ("status", "pickup_branch", "pickup_by", "closed", "reason", "first_ms")


def after_forget(hold: Mapping[str, str], now: datetime) -> tuple[dict[str, str], bool]:
    """What a hold keeps after ``patron forget`` removed its card's data, and whether it
    goes (or stays) on the call list as ``forgotten``.

    The hold is still ready in the ILS, and forgetting the patron must not leave them
    untold: a hold the worker had not yet told them about — being sent, waiting in a
    digest window or for a retry — or that was on the call list and not yet phoned is
    listed for a call with only its hold id, branch and last day; staff find the patron
    in the ILS by the hold id. A hold already mailed, phoned, cancelled, picked up or
    past its window is not listed. The record stays (stripped, with its lifetime) so
    that a message still queued for it — a digest window's, a retry's, a duplicate —
    finds a hold with an outcome and re-creates nothing (worker/app/patron_data.py)."""
    kept = {f: hold[f] for f in FORGOTTEN_HOLD_FIELDS if hold.get(f)}
    status = hold.get("status")
    listed = status in BUSY_STATUSES or (status == "phoned" and not hold_closed(hold, now))
    return kept, listed


def retention_s(pickup_by: date, now: datetime, keep_days: int) -> int:
    """How long to keep a hold's record: past its deadline by ``keep_days`` (``[retention]
    hold_days``), so bounces that arrive late can still be traced to the notice. Its title
    and the patron's name are gone long before (:func:`hold_closed`)."""
    # a difference of two datetimes cannot overflow; a sum could (deadline near 9999)
    keep = (pickup_deadline(pickup_by) - now).total_seconds() + keep_days * 86400
    return max(int(keep), 86400)


def call_entry_over(entry: Mapping[str, object], now: datetime) -> bool:
    """Whether a call-list entry is past its pickup window (nobody can collect any more)."""
    last = _day(entry.get("pickup_by") if isinstance(entry.get("pickup_by"), str) else None)  # type: ignore[arg-type]
    if last is None:
        added = entry.get("added_at")
        try:
            listed = datetime.fromisoformat(added).date() if isinstance(added, str) else None
        except ValueError:
            listed = None
        if listed is None:
            return False
        last = listed + timedelta(days=UNKNOWN_PICKUP_DAYS)
    return now >= pickup_deadline(last)


def undo_offered(hold: Mapping[str, str], now: datetime) -> bool:
    """Whether staff may still undo "called" on this hold (see 2. above)."""
    if hold.get("status") != "called" or hold.get("closed") or not hold.get("called_entry"):
        return False
    called_ms = int(hold.get("called_ms") or 0)
    return now.timestamp() * 1000 - called_ms < UNDO_S * 1000


def strip_fields(hold: Mapping[str, str], now: datetime) -> tuple[str, ...]:
    """The fields of :data:`HOLD_PERSONAL_FIELDS` to drop from a closed hold now."""
    if undo_offered(hold, now):
        return tuple(f for f in HOLD_PERSONAL_FIELDS if f not in UNDO_KEEPS)
    return HOLD_PERSONAL_FIELDS


def needs_stripping(hold: Mapping[str, str], now: datetime) -> bool:
    """A closed hold that still has a field it should not keep (:func:`strip_fields`)."""
    return hold_closed(hold, now) and any(hold.get(f) for f in strip_fields(hold, now))


@dataclass(frozen=True)
class Cutoffs:
    """The oldest moment (Tokyo ISO, as records write ``at``) each list keeps."""

    called: str
    audit: str
    failures: str
    bounces: str
    refused: datetime
    outbox: datetime


def cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def cutoffs(now: datetime, r: RetentionSettings) -> Cutoffs:
    def iso(days: int) -> str:
        return cutoff(now, days).isoformat(timespec="seconds")
    return Cutoffs(called=iso(r.called_days), audit=iso(r.audit_days),
                   failures=iso(r.failures_days), bounces=iso(r.bounces_days),
                   refused=cutoff(now, r.refused_days), outbox=cutoff(now, r.outbox_days))


def arrival_time(score: float) -> datetime | None:
    """When a refused event arrived, from its order score: µs since the epoch (older
    entries: ms). None when the score says nothing."""
    if score <= 0:
        return None
    seconds = score / 1e6 if score >= 1e14 else score / 1e3
    try:
        return datetime.fromtimestamp(seconds).astimezone()
    except (OverflowError, OSError, ValueError):
        return None


def purge_due(day_started: date | None, now: datetime, hour: int) -> bool:
    """Whether the daily purge should start now: not yet today, and ``hour`` reached."""
    return day_started != now.date() and now.hour >= hour
