"""Redis I/O of the secret that signs the worker's own queue messages (see
:mod:`worker.queue.internal`). Synchronous: it is read by dramatiq's consumer and worker
threads, through the broker's own Redis client."""

from __future__ import annotations

import secrets
from typing import Any

from .keys import Keys


def queue_secret(client: Any, keys: Keys) -> bytes:
    """The deployment's secret, created by whichever process asks first (SET NX, so every
    process of every worker on this Redis gets the same one) and kept for ever: deleting
    it while workers run makes their give-ups in flight be refused (then listed as
    ``invalid_event`` instead of ``worker_error``: still one outcome per hold)."""
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.queue_secret, secrets.token_hex(32), nx=True)
    pipe.get(keys.queue_secret)
    _, value = pipe.execute()
    return value if isinstance(value, bytes) else str(value).encode()
