"""The deployment's secrets in Redis: each created once, by whichever process asks first
(SET NX, then GET, in one MULTI: every process of every worker on this Redis gets the
same one, whoever wins the race), and kept for ever; each process reads it once and
caches it. One implementation for the two there are — the async store's and dramatiq's
sync client differ only in how the MULTI is sent."""

from __future__ import annotations

import secrets
from typing import Any

from .keys import Keys


def _create_then_read(pipe: Any, key: str) -> None:
    pipe.set(key, secrets.token_hex(32), nx=True)
    pipe.get(key)


def _secret(replies: list[Any]) -> bytes:
    value = replies[1]  # the GET's: ours, or the one the first to ask wrote
    return value if isinstance(value, bytes) else str(value).encode()


async def notice_secret(client: Any, keys: Keys) -> bytes:
    """The secret notice tokens are derived from (worker/mail/compose.py,
    ``notice_token``): a notice's Message-ID is an HMAC of its hold ids under it.

    It is written minutes to months before any failover, so a replica has it long
    before it can be promoted: only a primary lost within its replication lag of the
    very first write (a fresh install's first seconds) would take it along, and then
    the mails of that moment would be re-sent under other Message-IDs — nothing else.
    Deleting it changes the Message-ID of every notice a process started afterwards
    sends (a re-send included); restart the workers if it ever must go."""
    async with client.pipeline(transaction=True) as p:
        _create_then_read(p, keys.notice_secret)
        return _secret(await p.execute())


def queue_secret(client: Any, keys: Keys) -> bytes:
    """The secret that signs the worker's own queue messages (see
    :mod:`worker.queue.internal`). Synchronous: it is read by dramatiq's consumer and
    worker threads, through the broker's own Redis client. Deleting it while workers
    run makes their give-ups in flight be refused (then listed as ``invalid_event``
    instead of ``worker_error``: still one outcome per hold)."""
    with client.pipeline(transaction=True) as p:
        _create_then_read(p, keys.queue_secret)
        return _secret(p.execute())
