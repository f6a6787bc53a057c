"""The lab itself (tests/redis_lab.py): Sentinel really promotes the replica after a
``kill -9`` of the primary, and the old primary comes back as a replica. The HA tests
rest on this, so it is checked on its own first — and on the Redis version the suite half
tests (OMITAMA_TEST_REDIS_VERSION: the embedded 6.2, Debian's 7), so that a half cannot
run its HA tests on the other version unnoticed."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import wait_for
from tests.redis_binaries import REDIS_SERVER, binary_version, version_matches
from tests.redis_lab import NOT_UP, lab_or_skip


def test_sentinel_promotes_the_replica_and_the_old_primary_rejoins(tmp_path: Path) -> None:
    with lab_or_skip(tmp_path / "lab") as lab:
        want = os.environ.get("OMITAMA_TEST_REDIS_VERSION") or binary_version(REDIS_SERVER)
        got = str(lab.primary.client().info("server")["redis_version"])
        assert want and version_matches(got, want), (got, want, lab.versions())
        assert all(r.version == got for r in lab.replicas), lab.versions()
        lab.primary.client().set("omitama-lab:before", "1")
        lab.wait_synced()
        old = lab.primary
        old.kill9()
        new = lab.wait_failover(old)
        assert new.port != old.port
        assert new.client().get("omitama-lab:before") == "1"
        new.client().set("omitama-lab:after", "2")
        lab.restart(old)
        # Sentinel turns the returning node into a replica; it copies the new data set
        wait_for(lambda: old.role() == "slave" and old.client().get("omitama-lab:after") == "2",
                 30, 0.1, what="the old primary a replica with the new data", ignore=NOT_UP)
        assert old.role() == "slave"
        assert old.client().get("omitama-lab:after") == "2"
        assert lab.sentinel_primary() == new.port
