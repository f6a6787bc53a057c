"""The lab itself (tests/redis_lab.py): Sentinel really promotes the replica after a
``kill -9`` of the primary, and the old primary comes back as a replica. The HA tests
rest on this, so it is checked on its own first."""

from __future__ import annotations

from pathlib import Path

from tests.redis_lab import lab_or_skip


def test_sentinel_promotes_the_replica_and_the_old_primary_rejoins(tmp_path: Path) -> None:
    with lab_or_skip(tmp_path / "lab") as lab:
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
        import time
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if old.role() == "slave" and old.client().get("omitama-lab:after") == "2":
                    break
            except Exception:  # noqa: BLE001 - still loading
                pass
            time.sleep(0.1)
        assert old.role() == "slave"
        assert old.client().get("omitama-lab:after") == "2"
        assert lab.sentinel_primary() == new.port
