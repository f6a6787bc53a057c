"""VERP return paths: each notice's envelope sender names it, so its bounce does.

With ``[mail] return_path = "bounce+{token}@city.omitama.ibaraki.jp"`` every notice and
confirmation mail goes out with ``MAIL FROM:<bounce+TOKEN@city.omitama.ibaraki.jp>``.
The relay sends any failure report to that address (its ``recipient_delimiter = +``
delivers it to the ``bounce`` mailbox), and the token — 128 random bits, lower-case hex
because some mail systems lower-case local parts — maps in Redis
(:mod:`worker.store.verp`) to the hold, reminder or registration it was sent for, for
``[bounces] token_days``. A reminder's or confirmation's Message-ID carries the same
token (worker/app/send.py). Empty ``return_path`` (the default) keeps today's envelope
sender, ``[mail] from_address``.

The From header stays ``from_address`` in both cases: patrons' filters allow that
address, and replies go there, not to the bounce mailbox.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from typing import Iterable

from .compose import Notice

TOKEN_RE = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Sent:
    """What one return-path token was issued for (stored with it)."""

    kind: str               # "hold" | "reminder" | "registration"
    card: str
    address: str            # the envelope recipient the mail went to
    hold_id: str = ""       # kind "hold" (a digest's: its first hold)
    event_id: str = ""      # kind "registration": the address_registered event


def new_return_token() -> str:
    """A return path's token (128 bits, lower-case hex): not a notice's token
    (:func:`worker.mail.compose.new_token`, its Message-ID), which is shorter and public."""
    return secrets.token_hex(16)


def return_path(template: str, token: str) -> str:
    return template.replace("{token}", token)


def token_in(template: str, addresses: Iterable[str]) -> str | None:
    """The token in the first of ``addresses`` that matches the template (case-blind:
    mail systems may change the case of either part), or None."""
    if not template:
        return None
    head, _, tail = template.lower().partition("{token}")
    pattern = re.compile(re.escape(head) + r"([0-9a-f]{32})" + re.escape(tail))
    for a in addresses:
        m = pattern.fullmatch(a.strip().strip("<>").lower())
        if m:
            return m[1]
    return None


def with_return_path(notice: Notice, template: str, token: str) -> Notice:
    return replace(notice, sender=return_path(template, token))
