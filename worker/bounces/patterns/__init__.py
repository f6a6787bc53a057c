"""Lower-case message fragments per reason, used by :mod:`worker.bounces.rules`.

Most fragments were collected by the Sisimai project (``reason/why-*.go``, BSD 2-Clause
License, (C) azumakuniyuki and the sisimai development team) from real bounces; a few
Japanese ones are ours.  ``ANY``: one fragment appears.  ``ALIGNED``: all pieces appear,
in order.  The tables live in one module per reason group and are merged here:

* :mod:`.recipient`: the recipient's address and mailbox (userunknown, filtered, …)
* :mod:`.sender`: our sender, sending IP and authentication (rejected, blocked, …)
* :mod:`.content`: the message itself (spamdetected, policyviolation, mesgtoobig, …)
* :mod:`.transport`: transport, remote systems and time (expired, networkerror, …)
"""

from __future__ import annotations

from . import content, recipient, sender, transport

_GROUPS = (recipient, sender, content, transport)

ANY: dict[str, tuple[str, ...]] = {}
ALIGNED: dict[str, tuple[tuple[str, ...], ...]] = {}
for _group in _GROUPS:
    for _reason, _fragments in _group.ANY.items():
        ANY[_reason] = ANY.get(_reason, ()) + _fragments
    for _reason, _sequences in _group.ALIGNED.items():
        ALIGNED[_reason] = ALIGNED.get(_reason, ()) + _sequences

#: Fragments that mean "not our sender": they veto ``rejected``.
NOT_REJECTED: tuple[str, ...] = ("5.1.0 address rejected", "recipient address rejected",
                                 "sender ip address rejected")
