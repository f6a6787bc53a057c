"""Redis I/O of VERP return-path tokens (see :mod:`worker.mail.verp`)."""

from __future__ import annotations

import json
from dataclasses import asdict

from ..mail.compose import Notice
from ..settings import Settings
from .core import Store, _dumps
from ..mail.verp import Sent, new_return_token, with_return_path


async def stamp_return_path(store: Store, settings: Settings, notice: Notice, sent: Sent) -> Notice:
    """``notice`` with its own return path, the token remembered for ``[bounces]
    token_days``; unchanged (no Redis call) when ``[mail] return_path`` is empty."""
    template = settings.mail.return_path
    if not template:
        return notice
    token = new_return_token()
    await store.r.set(store.k.verp(token), _dumps(asdict(sent)),
                      ex=int(settings.bounces.token_days * 86400))
    return with_return_path(notice, template, token)


async def sent_for(store: Store, token: str) -> Sent | None:
    """What the token was issued for, or None (never issued, or expired)."""
    raw = await store.r.get(store.k.verp(token))
    if not raw:
        return None
    try:
        return Sent(**json.loads(raw))
    except (ValueError, TypeError):
        return None
