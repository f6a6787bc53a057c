"""What a bounce means for the patron's address (pure).

The model, justified against the two references:

* GNU Mailman 3 scores permanent bounces: at most one point a day, suspension at
  a threshold (5), points older than a window (7 days) forgotten. That is right
  for failures whose cause is unclear (``spamdetected``, ``policyviolation``, a
  ``filtered`` without the words of the recipient's filter …): one bad day at a provider must not cut
  a patron off, a week of them should.
* Postal suppresses an address at the first hard bounce. That is right when the
  reason itself says the address cannot work until someone acts: the recipient's
  own filter refuses us (*misconfigured recipient*: ``filtered`` or ``rejected``
  with evidence of that filter — the Japanese carriers' "reject unknown senders"
  setting), or the
  mailbox or domain does not exist (``userunknown``, ``hostunknown``,
  ``hasmoved``, ``suspend``, ``notaccept``). Retrying those only adds bounces;
  the patron has to change a setting or their address, and staff phone them.

Soft failures (mailbox full, delays, 4xx) add no points: they clear by themselves. A
failure our own sender caused (``sender_problem``: authentication, our IP or domain
blocked, no reverse DNS) is never judged here at all: worker/app/bounce_effects.py gives
it no points and suspends nobody — the fix is the city's DNS, not the patron's address.
Scores decay by the window; a later successful delivery is recorded but does not
wipe the points (a relay's 250 is not proof the mailbox accepted it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from ..settings import BounceSettings

DEAD_ADDRESS = frozenset({"userunknown", "hostunknown", "hasmoved", "suspend", "notaccept"})


@dataclass(frozen=True)
class Verdict:
    points: float        # points this bounce adds (0 … points_per_day)
    score: float         # the address's score after it, counting only fresh days
    suspend: bool        # suspend the address now
    why: str             # for the audit log


def judge(reason: str | None, permanent: bool, misconfigured: bool, day: date,
          scored_days: dict[date, float], cfg: BounceSettings) -> Verdict:
    """``scored_days``: points already given per day (Tokyo calendar days)."""
    fresh = {d: p for d, p in scored_days.items()
             if d > day - timedelta(days=cfg.stale_after_days)}
    if not permanent:
        return Verdict(0.0, sum(fresh.values()), False, f"{reason}: temporary, no points")
    points = 0.0 if day in fresh else cfg.points_per_day
    score = sum(fresh.values()) + points
    if misconfigured:
        return Verdict(points, score, True,
                       f"{reason}: the recipient's settings refuse our mail (suspended at once)")
    if reason in DEAD_ADDRESS:
        return Verdict(points, score, True, f"{reason}: the address cannot receive mail "
                                            "(suspended at once)")
    if score >= cfg.threshold:
        return Verdict(points, score, True, f"{reason}: bounce score {score:g} reached "
                                            f"{cfg.threshold:g} within {cfg.stale_after_days:g} days")
    return Verdict(points, score, False, f"{reason}: bounce score {score:g} of {cfg.threshold:g}")
