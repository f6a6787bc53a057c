"""A patron's data on request: ``patron export`` (a disclosure) and ``patron forget``.

Forgetting removes everything the worker holds about a card — contact record, holds,
call-list entries, records of calls, failures, bounce-mail log rows, refused events,
return-path tokens, outbox mails to the patron's addresses — and leaves one audit entry
saying that it was removed, by whom and why (worker/store/patron_data.py).

Forgotten means forgotten: nothing removed comes back. A hold's record is stripped, not
deleted, so a message still queued for it (a digest window's, a retry's, a duplicate, or
an event for the card no worker has read yet) finds a hold with an outcome and stores
nothing. A ready hold whose patron had not been
told yet is listed for a call as ``forgotten`` with only its hold id, branch and last
day: staff find the patron in the ILS (worker/holds/retention.py: after_forget).
"""

from __future__ import annotations

import logging
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from ..contact.changes import AuditKind, audit_entry
from ..errors import ReviewError, StoreError
from ..jdate import now_tokyo
from ..settings import Settings
from ..store.core import Store
from ..store.patron_data import Found

log = logging.getLogger(__name__)
_ADDRESS_FIELDS = ("address", "envelope", "pending_address", "pending_envelope",
                   "suspended_address", "suspended_envelope")


def _outbox_mails(folder: Path, f: Found) -> list[Path]:
    """Outbox .eml files addressed to one of the card's addresses."""
    mine = {f.patron[x].lower() for x in _ADDRESS_FIELDS if f.patron.get(x)}
    if not mine or not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.eml")):
        try:
            with path.open("rb") as fh:
                head = BytesHeaderParser().parse(fh)
        except OSError:
            continue
        to = {a.lower() for _, a in getaddresses([str(head.get("To", ""))])}
        if to & mine:
            found.append(path)
    return found


async def export(store: Store, settings: Settings, card: str) -> dict[str, Any]:
    f = await store.patron_data.find(card)
    return {**f.export(), "outbox_mails": [p.name for p in _outbox_mails(settings.outbox_dir, f)]}


async def forget(store: Store, settings: Settings, card: str, staff: str,
                 reason: str) -> dict[str, int]:
    """Remove everything about ``card`` but the audit line saying so; counts by kind."""
    if not staff.strip() or not reason.strip():
        raise ReviewError("patron forget needs --staff and a --reason (kept in the audit log)",
                          kind="reason_required")
    data = store.patron_data
    for _ in range(10):  # a hold of the card changed meanwhile (a worker sent it): again
        f = await data.find(card, settings.redis.namespace)
        listed = await data.remove(f, audit_entry(AuditKind.FORGOTTEN, staff, reason),
                                   now_tokyo(), settings.retention.hold_days)
        if listed is not None:
            break
    else:
        raise StoreError("patron forget: the card's holds kept changing while they were "
                         "removed (a worker busy with them); run the command again")
    mails = _outbox_mails(settings.outbox_dir, f)
    for path in mails:
        path.unlink(missing_ok=True)
    counts = {**f.counts(), "outbox_mails": len(mails), "listed_for_call": listed}
    # not the card: the audit line keeps that, and a log outlives the forgetting
    log.info("a patron's records were removed on request by %s", staff)
    return counts
