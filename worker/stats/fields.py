"""What the statistics count, and how one count is named (pure).

The counts live in one Redis hash per Tokyo day (``stats:day:{YYYY-MM-DD}``,
worker/store/stats.py); each field is ``{branch}|{metric}`` and the metric is a dotted
name from the list below. The increments are made by the very step that records what
they count (the outcome scripts, worker/store/outcomes.py; the contact change's MULTI,
worker/store/contacts.py), so a count cannot drift from the outcomes. Nothing in a field
names a patron: a branch, a reason from a fixed vocabulary, a carrier bucket.

    mailed.single.{carrier}    a hold's notice handed to the relay, one hold in the mail
    mailed.digest.{carrier}    … in a digest carrying several holds (counted per hold)
    listed.{reason}            a hold put on the call list (CallReason; bounced included)
    bounced.{reason}.{carrier} a mail for the hold failed (bounce reason, Sisimai's names)
    sendfail.{carrier}         of those, refused by the relay at send time (never mailed)
    reminded                   a pickup reminder mailed for a hold
    called                     staff marked a hold's call done (an undo takes it back)
    registered                 an address registered (application branch)
    approved.code              approved with the receipt code
    approved.without_code      approved without it (with a reason)
    rejected                   a registration rejected
    wait.{bucket}              approvals by how long they waited (registration → approval)
    wait.n, wait.sum_s         approvals whose wait is known, and the seconds they waited
                               (sum ÷ n = the average)
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Mapping

from ..contact.changes import AuditKind
from ..contact.domains import carrier_of

#: The carrier buckets of the statistics (the issue's docomo, au, SoftBank, other).
CARRIER_BUCKETS: tuple[str, ...] = ("docomo", "au", "softbank", "other")
CARRIER_LABELS: dict[str, str] = {"docomo": "ドコモ", "au": "au", "softbank": "ソフトバンク",
                                  "other": "その他"}

#: Age buckets (lower bound in days, name) for approval waits and pending registrations.
WAIT_BUCKETS: tuple[tuple[int, str], ...] = (
    (0, "d0"), (1, "d1"), (3, "d3"), (7, "d7"), (14, "d14"), (30, "d30"))
WAIT_LABELS: dict[str, str] = {"d0": "1日未満", "d1": "1〜2日", "d3": "3〜6日",
                               "d7": "7〜13日", "d14": "14〜29日", "d30": "30日以上"}

#: A hold whose branch the record does not know (an event refused before it named one).
UNKNOWN_BRANCH = "unknown"
SEP = "|"


def carrier_bucket(address: str) -> str:
    """docomo, au, softbank or other, from the address's domain. Y!mobile and Rakuten
    mailboxes are "other": the issue's buckets are the three carriers whose filters
    cause most refusals, and their own advice screens differ from SoftBank's."""
    return _bucket(address.rpartition("@")[2].lower())


@lru_cache(maxsize=1024)  # asked once per notice mailed: a few domains make most mail
def _bucket(domain: str) -> str:
    bucket = carrier_of(domain)
    return bucket if bucket in CARRIER_BUCKETS else "other"


def wait_bucket(seconds: float) -> str:
    days = seconds / 86400
    name = WAIT_BUCKETS[0][1]
    for lower, bucket in WAIT_BUCKETS:
        if days >= lower:
            name = bucket
    return name


def field(branch: str | None, metric: str) -> str:
    return f"{branch or UNKNOWN_BRANCH}{SEP}{metric}"


def split(name: str) -> tuple[str, str]:
    """(branch, metric) of a stored field; a field without a branch is the unknown one's."""
    branch, sep, metric = name.partition(SEP)
    return (branch, metric) if sep else (UNKNOWN_BRANCH, name)


def bounce_stats(address: str, reason: str | None) -> dict[str, str]:
    """The hold fields a refusal at send time leaves for its counts (``bounced.*``,
    ``sendfail.*``): the carrier bucket and the bounce's reason."""
    return {"carrier": carrier_bucket(address), "bounce_reason": reason or "undefined"}


def contact_counts(before: Mapping[str, str], audit: Mapping[str, Any],
                   now: datetime) -> list[tuple[str, int]]:
    """The counts one contact change makes (registrations, approvals, rejections, how
    long an approval waited), from the record before it and its audit entry."""
    kind, branch = audit.get("kind"), audit.get("branch") or before.get("pending_branch")
    if kind == AuditKind.REGISTERED:
        return [(field(branch, "registered"), 1)]
    if kind == AuditKind.REJECTED:
        return [(field(branch, "rejected"), 1)]
    if kind not in (AuditKind.APPROVED, AuditKind.APPROVED_WITHOUT_CODE):
        return []
    how = "code" if kind == AuditKind.APPROVED else "without_code"
    counts = [(field(branch, f"approved.{how}"), 1)]
    try:
        since = datetime.fromisoformat(before.get("pending_at") or "")
        waited = max(0, int((now - since).total_seconds())) if since.tzinfo else None
    except ValueError:
        waited = None
    if waited is not None:  # a registration time we cannot read adds no wait
        counts += [(field(branch, f"wait.{wait_bucket(waited)}"), 1),
                   (field(branch, "wait.n"), 1), (field(branch, "wait.sum_s"), waited)]
    return counts
