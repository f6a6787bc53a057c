"""What ``omitama-notify check`` says about Redis Sentinel: the primary the Sentinels name,
how many answer, their quorum and whether a failover could be authorised, the replicas
and their lag (from the primary's INFO replication). Read-only: nothing is changed."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..errors import StoreError
from ..settings import RedisSettings
from redis.exceptions import ResponseError

from .connect import node_client, sentinel
from .sentinels import SENTINEL_ERRORS, addr, no_primary, short, usable_primary

__all__ = ["NoPrimary", "sentinel_line"]


class NoPrimary(StoreError):
    """No Sentinel answers, none names a primary, or the one named does not answer: every
    command would wait ``[redis] failover_wait_s`` and fail."""


def sentinel_line(rs: RedisSettings) -> str:
    """One line for ``check``; StoreError (one line too) when no Sentinel answers, none
    names a primary, no failover could be authorised, or no replica is there to promote."""
    manager = sentinel(rs)
    try:
        return _line(rs, manager)
    finally:
        manager.close()


def _line(rs: RedisSettings, manager: Any) -> str:
    name, total = rs.master_name, len(manager.sentinels)
    named: Counter[str] = Counter()
    said, quorum, ask, answered = [], 0, None, 0
    for s in manager.sentinels:
        try:
            state = s.sentinel_master(name)
        except ResponseError as e:  # it answers, but does not monitor that name
            said.append(f"{addr(s)}: {short(e)}")
            answered += 1
            continue
        except SENTINEL_ERRORS as e:
            said.append(f"{addr(s)}: {short(e)}")
            continue
        ask, answered = ask or s, answered + 1
        quorum = int(state.get("quorum", 0))
        found = usable_primary(manager, state)
        if isinstance(found, tuple):
            named[f"{found[0]}:{found[1]}"] += 1
        else:
            said.append(f"{addr(s)} {found}")
    if not answered:
        raise NoPrimary(f"no Sentinel in [redis] sentinels answers ({'; '.join(said)}); "
                         f"check that they run and that [redis] sentinel_password is theirs")
    if ask is None or not named:
        raise NoPrimary(str(no_primary(name, said)))
    primary, count = named.most_common(1)[0]
    others = f"; others: {', '.join(sorted(set(named) - {primary}))}" if len(named) > 1 else ""
    try:
        ok = ask.execute_command("SENTINEL", "CKQUORUM", name)
    except SENTINEL_ERRORS as e:
        raise StoreError(f"primary {primary}, but no failover could be authorised: {e}") from None
    replicas = _replicas(rs, primary)
    if not replicas:
        raise StoreError(f"primary {primary} has no replica connected: a failover would have "
                         f"nothing to promote")
    # "OK 3 usable Sentinels. Quorum and failover authorization can be reached"
    usable = (ok.decode() if isinstance(ok, bytes) else str(ok)).removeprefix("OK ")
    return (f"primary {primary} named by {count} of {total} Sentinels{others} (quorum "
            f"{quorum}, {usable.split('.')[0]}: a failover can be authorised); "
            f"{len(replicas)} replica{'s' * (len(replicas) > 1)}: {', '.join(replicas)}")


def _replicas(rs: RedisSettings, primary: str) -> list[str]:
    """Each replica the primary reports: address, state, lag (s since its last ack)."""
    host, _, port = primary.rpartition(":")
    client = node_client(rs, host, int(port))
    try:
        info = client.info("replication")
    except SENTINEL_ERRORS as e:
        raise NoPrimary(f"the Sentinels name {primary} as primary, but it does not answer: "
                         f"{short(e)}") from None
    finally:
        client.close()
    out = []
    for key in sorted(k for k in info if k.startswith("slave") and k[5:].isdigit()):
        r = info[key]
        out.append(f"{r.get('ip')}:{r.get('port')} {r.get('state')}, lag {r.get('lag')} s")
    return out
