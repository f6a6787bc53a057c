"""dramatiq's Redis key names, written once (the broker and the sweeper use them).

dramatiq's Redis broker documents its layout in the header of
``dramatiq/brokers/redis/dispatch.lua`` (checked against dramatiq 2.2); every key starts
with ``[redis] namespace`` (default ``dramatiq``, which any dramatiq producer uses):

=================================  =====  ==============================================
key                                type   content
=================================  =====  ==============================================
<ns>:<queue>                       list   redis_message_ids waiting
<ns>:<queue>.msgs                  hash   redis_message_id → JSON message
<ns>:<queue>.DQ / .DQ.msgs         list   delayed messages (retries; ``options.eta``)
<ns>:<queue>.XQ / .XQ.msgs         zset   dead-lettered ids (score: ms) / their JSON
<ns>:__acks__.<worker>.<queue>     set    ids a live worker fetched and has not acked
<ns>:__heartbeats__                zset   worker id → last seen (ms)
<ns>:__swept__.<queue>.<id>        str    ours: the sweeper re-queued this id lately
                                          (lifetime two leases; worker/queue/sweeper.py)
=================================  =====  ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass

from dramatiq.common import dq_name


def delayed(queue: str) -> str:
    """The name of ``queue``'s delayed queue (dramatiq's ``dq_name``: ``<queue>.DQ``)."""
    return dq_name(queue)


@dataclass(frozen=True)
class QueueKeys:
    namespace: str = "dramatiq"

    def queue(self, queue: str) -> str:
        return f"{self.namespace}:{queue}"

    def messages(self, queue: str) -> str:
        return f"{self.namespace}:{queue}.msgs"

    def acks(self, worker_id: str, queue: str) -> str:
        return f"{self.namespace}:__acks__.{worker_id}.{queue}"

    def acks_pattern(self, queue: str) -> str:
        """Matches the ack set of every worker for ``queue`` (SCAN MATCH)."""
        return self.acks("*", queue)

    @property
    def heartbeats(self) -> str:
        return f"{self.namespace}:__heartbeats__"

    def swept(self, queue: str, message_id: str) -> str:
        return f"{self.namespace}:__swept__.{queue}.{message_id}"
