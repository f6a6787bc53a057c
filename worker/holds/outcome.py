"""What handling one hold notice came to (pure vocabulary).

Counted in ``omitama_notices_total{outcome=…}`` and the worker's minute summary
(worker/queue/metrics.py, worker/queue/activity.py): the values are metric labels,
never rename one."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    SENT = "sent"            # handed to the relay (or written to the outbox)
    PHONED = "phoned"        # put on the staff phone-call list
    RETRY = "retry"          # transient failure; try again after delay_ms
    BUSY = "busy"            # another worker holds the lease; look again later
    DUPLICATE = "duplicate"  # this hold already reached an outcome
    CLOSED = "closed"        # cancelled or picked up while we worked on it
    LOST = "lost"            # our lease ran out and another worker took the hold over
    GATHERING = "gathering"  # waits for its digest window to end (worker/app/digest.py)
    # mailed in a digest with other holds, not its first (the first counts the mail as
    # sent): counted by whoever sent the window, nothing was lost
    GATHERED = "gathered"
