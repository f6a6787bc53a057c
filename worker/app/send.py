"""The one way the worker sends a mail: notices, digests, reminders, confirmations.

Every mail goes through :func:`send_mail`, which owns what sending means here:

1. **A name the tracing knows.** A hold notice is named by its hold's notice token
   (``<hold.TOKEN@…>``, ``notice:TOKEN`` written by the claim); any other mail gets a
   token of its own, remembered with what it was sent for (:class:`~worker.mail.verp.Sent`:
   kind, card, address) for ``[bounces] token_days`` — the Message-ID
   (``<remind.TOKEN@…>``, ``<reg.TOKEN@…>``) and the VERP return path then carry the same
   token, one Redis write for both. A bounce quoting either is traced like a notice's
   (worker/app/ingest.py), and the trust rule (worker/bounces/trust.py) applies alike.
2. **The VERP return path** (``[mail] return_path``): ``MAIL FROM:<bounce+TOKEN@…>``.
3. **The deadline inside the lease.** A send must be over within ``SEND_SHARE`` of the
   lease after the claim (the caller takes ``deadline`` at its claim: :func:`deadline`);
   the message itself goes out only with a whole ``[smtp] timeout`` left for the relay's
   reply, the lease first extended by that much (``lease``: make it last until a
   moment, False when the claim is no longer ours; a mail without a lease — a
   reminder's take, a confirmation — just goes on). See worker/mail/transport.py and the
   docstring of worker/app/holds.py.
4. **The relay call** and **what a refusal means**: a permanent one (5xx) goes through
   the bounce steps (:func:`worker.app.bounce_effects.apply_failure`: failure row,
   points, suspension) at once; a transient one is only reported — when to try again is
   the caller's (a hold: within its retry horizon; a reminder: the next pass; a
   confirmation: the actor's retry).

What differs between the four kinds of mail is only which records the caller writes
with the :class:`Delivery` it gets back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Awaitable, Callable

from ..bounces.failures import smtp_result
from ..errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from ..mail.compose import Notice
from ..mail.verp import Sent, new_return_token, with_return_path
from ..runtime import Runtime
from ..store.core import now_ms
from ..store.verp import remember_sent
from .bounce_effects import apply_failure

# The share of the lease a send may take, counted from the claim (worker/app/holds.py)
SEND_SHARE = 0.8

# what a failure row says the refused mail was (a notice's says nothing: the usual case)
_WHAT = {"registration": "confirmation mail", "reminder": "reminder"}
# make the caller's lease last at least until this moment (ms); False: no longer ours
Lease = Callable[[int], Awaitable[bool]]


class Delivered(StrEnum):
    SENT = "sent"            # the relay took it (or the outbox has it)
    REFUSED = "refused"      # a permanent refusal: the bounce steps are done
    TRANSIENT = "transient"  # try again later (the caller says when)


@dataclass(frozen=True)
class Delivery:
    outcome: Delivered
    message_id: str
    reply: str = ""                      # the relay's reply, when SENT
    error: DeliveryError | None = None   # when REFUSED or TRANSIENT
    reason: str = ""                     # when REFUSED: the bounce's reason (statistics)

    @property
    def diagnostic(self) -> str:
        e = self.error
        if e is None:
            return ""
        return f"{e.code} {e.text}" if e.code is not None else str(e)


def deadline(rt: Runtime) -> float:
    """When a send started now (at a claim) must be over: the loop's clock."""
    return asyncio.get_running_loop().time() + SEND_SHARE * rt.settings.delivery.lease_s


async def send_mail(rt: Runtime, sent: Sent, compose: Callable[[str], Notice], *,
                    until: float | None, lease: Lease | None = None,
                    token: str | None = None) -> Delivery:
    """Compose (``compose(token)``), name, stamp and send one mail for ``sent``; the
    bounce steps of a permanent refusal are done here. ``token``: the name the mail
    already has (a hold notice's); None issues one. ``until``: :func:`deadline`."""
    s = rt.settings
    keep_s = int(s.bounces.token_days * 86400)
    template = s.mail.return_path
    verp = ""
    if token is None:  # the one token names the mail in its Message-ID and return path
        token = verp = new_return_token()
        await remember_sent(rt.store, verp, sent, keep_s)
    elif template:  # a notice: its Message-ID is the hold's; the return path its own
        verp = new_return_token()
        await remember_sent(rt.store, verp, sent, keep_s)
    notice = compose(token)
    if template:
        notice = with_return_path(notice, template, verp)
    margin_s = (1 - SEND_SHARE) * s.delivery.lease_s

    async def extend(seconds: float) -> bool:
        # the relay's reply to the message may take longer than the lease has left; a
        # mail without a lease (a reminder's take, a confirmation) needs nothing more
        return True if lease is None else await lease(now_ms() + int((seconds + margin_s) * 1000))
    try:
        reply = await rt.transport.send(notice, until, extend)
    except PermanentDeliveryError as e:
        result = smtp_result(e, sent.address)
        if result is not None:
            await apply_failure(rt.store, s, result, card=sent.card,
                                hold_id=sent.hold_id or None, address=sent.address,
                                source="smtp", diagnostic=f"{e.code} {e.text}",
                                what=_WHAT.get(sent.kind))
        return Delivery(Delivered.REFUSED, notice.message_id, error=e,
                        reason=(result.reason or "") if result is not None else "")
    except TransientDeliveryError as e:
        return Delivery(Delivered.TRANSIENT, notice.message_id, error=e)
    return Delivery(Delivered.SENT, notice.message_id, reply=reply)
