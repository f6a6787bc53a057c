"""Mails the watch could neither read nor move to ``ForStaff``: skipped for a while.

Without this, such an entry stays in the inbox, the wait sees it as new mail, and the
next pass fails on it again at once — a loop at full CPU. Each one is tried again
after a back-off that doubles (1 minute up to an hour), with one log line per attempt.
"""

from __future__ import annotations

import time
from typing import Callable

FIRST_S = 60.0
MOST_S = 3600.0


class SetAside:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._until: dict[str, tuple[float, float]] = {}  # id → (retry at, back-off)

    def add(self, mail_id: str) -> float:
        """Skip ``mail_id`` for a while; how many seconds."""
        _, last = self._until.get(mail_id, (0.0, FIRST_S / 2))
        wait = min(MOST_S, last * 2)
        self._until[mail_id] = (self.clock() + wait, wait)
        return wait

    def blocks(self, mail_id: str) -> bool:
        until = self._until.get(mail_id)
        return until is not None and self.clock() < until[0]

    def forget(self, mail_id: str) -> None:
        self._until.pop(mail_id, None)

    def blocked(self) -> set[str]:
        now = self.clock()
        return {i for i, (until, _) in self._until.items() if now < until}
