"""The strings the hold scripts (``worker/store/lua/``) write and answer, named once.

The store owns what its Lua writes: each script's header names the enums its strings
come from (``-- Vocabulary: HoldStatus, ClaimVerdict``), and tests/test_lua_vocab.py
fails when a script writes or answers a string that is not a member of them. The
values are what Redis holds and what ``review``/the staff page show: never rename one.
Both are StrEnums, so a reply read from Redis (a plain ``str``) compares equal to them.
"""

from __future__ import annotations

from enum import StrEnum


class HoldStatus(StrEnum):
    """The ``status`` field of ``hold:{hold_id}``."""

    SENDING = "sending"      # claimed: a worker holds the lease and is sending
    RETRYING = "retrying"    # a transient failure; the next claim retries
    SENT = "sent"            # handed to the relay (or the outbox)
    PHONED = "phoned"        # on the staff phone-call list
    CALLED = "called"        # staff phoned the patron (mark_called.lua; uncall.lua undoes)
    CANCELLED = "cancelled"  # the ILS cancelled the hold (close_hold.lua)
    PICKED_UP = "picked_up"  # the patron collected it (close_hold.lua)


# A hold in one of these may be claimed again (a retry, or a lease that ran out)
OPEN_STATUSES = frozenset({HoldStatus.SENDING, HoldStatus.RETRYING})


class ClaimVerdict(StrEnum):
    """What the hold scripts answer instead of a status: the first element of
    ``claim_hold.lua``'s reply, and the fenced or absent answers of the others."""

    CLAIMED = "claimed"  # claim_hold: this claim (its own token) owns the hold now
    DONE = "done"        # claim_hold: the hold already reached an outcome (its status follows)
    BUSY = "busy"        # claim_hold: another claim's lease still runs (ms left follow)
    LOST = "lost"        # finish_hold: a later claim took the hold over; nothing written
    MISSING = "missing"  # finish_hold, rephone_hold: no such hold (expired, never seen)
    UNSEEN = "none"      # close_hold: the status before, for a hold never seen (a tombstone)


class CallVerdict(StrEnum):
    """What mark_called.lua and uncall.lua answer besides the entry (or false)."""

    OTHER_CARD = "other_card"  # the entry names another card than the audit key given (follows)


class GatherVerdict(StrEnum):
    """What ``gather_join.lua`` answers (digest windows, worker/app/digest.py)."""

    WAIT = "wait"  # the hold joined (or opened) a window that is still open (ms left follow)
    DUE = "due"    # the card's window at the branch has ended and nobody took it yet
    LOST = "lost"  # another claim owns the hold now


class HoldOutcome(StrEnum):
    """The ``outcome`` of an entry of the outcome stream (worker/store/outcomes.py)."""

    MAILED = "mailed"          # the notice (or digest) was handed to the relay
    LISTED = "listed"          # on the staff phone-call list; reason = why not e-mail
    BOUNCED = "bounced"        # a mail for the hold bounced (a `listed` follows)
    CALLED = "called"          # staff marked the call done
    REMINDED = "reminded"      # a pickup reminder was mailed
    CANCELLED = "cancelled"    # hold_cancelled from the ILS
    PICKED_UP = "picked_up"    # hold_picked_up from the ILS
