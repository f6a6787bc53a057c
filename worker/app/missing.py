"""``holds missing``: which of the holds the ILS announced have no outcome yet, and of
those, which the worker still works on and which it never heard of.

Three answers per hold (the ILS re-announces only the last):

- **done** — the hold has an outcome (sent, phoned, called, cancelled, picked up, closed):
  the outcome stream has it, or had it before its trim. Re-announcing it changes nothing
  (the claim answers "done"), but there is no need.
- **pending** — no outcome yet, but not lost: its event waits in the queue (``queued``:
  also a retry waiting in the delayed queue, or a message a worker took and has not
  acknowledged), a worker is sending it (``sending``), it waits in its card's digest
  window (``gathering``, up to ``[digest] gather_s``) or for its next attempt after a
  transient failure (``retrying``, within its retry horizon). Each ends in an outcome
  without the ILS doing anything: the sweeper re-sends what a dead worker or a lost
  message stranded (worker/queue/sweeper.py).
- **unknown** — no record and no message: the worker never got the event, or lost it
  with its record (a failover to a replica that had not received the last writes). Only
  these need re-announcing; the same event again, under a new message id.

The reads are ordered so that a hold the ILS announced is never "unknown" while its
event is on the way (worker/store/hold_states.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..store.core import Store
from ..store.hold_states import HoldState
from ..store.vocab import OPEN_STATUSES, HoldStatus


class Known(StrEnum):
    DONE = "done"
    PENDING = "pending"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Answer:
    hold_id: str
    state: Known
    detail: str = ""  # done: the status; pending: queued | sending | gathering | retrying


def answer(st: HoldState) -> Answer:
    """What one hold's record and the queue say about it (the module's docstring)."""
    if st.status and st.status not in OPEN_STATUSES:
        return Answer(st.hold_id, Known.DONE, st.status)
    if st.status == HoldStatus.SENDING:
        return Answer(st.hold_id, Known.PENDING, "sending")
    if st.status == HoldStatus.RETRYING:
        waits = "gathering" if st.gather and not st.last_error else "retrying"
        return Answer(st.hold_id, Known.PENDING, waits)
    if st.queued:
        return Answer(st.hold_id, Known.PENDING, "queued")
    return Answer(st.hold_id, Known.UNKNOWN)


async def holds_missing(store: Store, hold_ids: list[str], namespace: str,
                        queue: str) -> list[Answer]:
    """One answer per hold of ``hold_ids``, in their order."""
    return [answer(st) for st in await store.hold_states.of(hold_ids, namespace, queue)]
