"""One patron by card number: contact state, addresses, holds on the call list, audit log."""

from __future__ import annotations

import re
import unicodedata

from starlette.requests import Request
from starlette.responses import Response

from ...app import calls as calls_mod
from ...ils.events import IDENT_PATTERN
from ..base import render, store

# what staff may see of the patron record (never the code's hash or salt)
SHOWN = ("state", "address", "pending_address", "pending_branch", "pending_at", "pending_typo",
         "confirmation", "suspended_address", "prev_state")


async def page(request: Request) -> Response:
    # NFKC: full-width digits (what a Japanese input method types) are the same card
    card = unicodedata.normalize("NFKC", request.query_params.get("card") or "").strip()[:64]
    record, history, calls = None, [], []
    if card and not re.fullmatch(IDENT_PATTERN, card):
        # "未登録" for a typo or a name typed into the wrong box would mislead
        return render(request, "patron.html", card=card, not_a_card=True, record=None,
                      history=[], calls=[])
    if card:
        raw = await store(request).contacts.get(card)
        record = {k: raw.get(k) for k in SHOWN}
        history = list(reversed(await store(request).history(card)))  # newest first
        calls = [c for c in await calls_mod.calls_view(store(request))
                 if c.get("card_number") == card]
    return render(request, "patron.html", card=card, record=record, history=history,
                  calls=calls)
