"""Redis I/O of the secret notice tokens are derived from (worker/mail/compose.py,
``notice_token``): a notice's Message-ID is an HMAC of its hold ids under it.

Created once, by whichever process asks first (SET NX: every process of every worker on
this Redis gets the same one), and kept for ever; each process reads it once. It is
written minutes to months before any failover, so a replica has it long before it can
be promoted: only a primary lost within its replication lag of the very first write (a
fresh install's first seconds) would take it along, and then the mails of that moment
would be re-sent under other Message-IDs — nothing else. Deleting it changes the
Message-ID of every notice a process started afterwards sends (a re-send included);
restart the workers if it ever must go."""

from __future__ import annotations

import secrets
from typing import Any

from .keys import Keys


async def notice_secret(client: Any, keys: Keys) -> bytes:
    """The deployment's notice secret (created by the first to ask)."""
    async with client.pipeline(transaction=True) as p:
        p.set(keys.notice_secret, secrets.token_hex(32), nx=True)
        p.get(keys.notice_secret)
        _, value = await p.execute()
    return value if isinstance(value, bytes) else str(value).encode()
