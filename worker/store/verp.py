"""Redis I/O of mail tokens: what each VERP return path or non-notice Message-ID token was
issued for (see :mod:`worker.mail.verp`; the mail is built in worker/app/send.py)."""

from __future__ import annotations

import json
from dataclasses import asdict

from ..mail.verp import Sent
from .core import Store, _dumps


async def remember_sent(store: Store, token: str, sent: Sent, keep_s: int) -> None:
    """Remember what ``token`` was issued for, for ``keep_s`` seconds."""
    await store.r.set(store.k.verp(token), _dumps(asdict(sent)), ex=keep_s)


async def sent_for(store: Store, token: str) -> Sent | None:
    """What the token was issued for, or None (never issued, or expired)."""
    raw = await store.r.get(store.k.verp(token))
    if not raw:
        return None
    try:
        return Sent(**json.loads(raw))
    except (ValueError, TypeError):
        return None
