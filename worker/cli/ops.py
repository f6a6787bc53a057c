"""``omitama-notify check``: is this installation ready to send? One line per check."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import date, datetime
from typing import Any, Callable

import jinja2

from ..mail.compose import Composer
from ..store.client import REDIS_UNREACHABLE
from ..store.connect import describe
from ..store.devredis import hint
from ..errors import ConfigError, StoreError
from ..ils.events import HoldReady
from ..jdate import TOKYO
from ..settings import Settings
from ..store.core import Store
from ..store.sentinel_view import NoPrimary, sentinel_line
from ..store.version import MIN_REDIS_TEXT, redis_too_old
from ..mail.transport import smtp_client


def _check_redis(s: Settings) -> str:
    async def go() -> str:
        store = Store.from_settings(s)
        try:
            try:
                await store.ping()
            except StoreError as e:  # say how to get one, not only that it is missing
                raise StoreError(f"{str(e).rstrip('.')}; {hint(s.redis)}") from None
            version = await store.server_version()
            too_old = redis_too_old(version)
            if too_old:
                raise StoreError(f"{too_old}; it answers at {describe(s.redis)}")
            return (f"Redis {version} answers at {describe(s.redis)} "
                    f"({MIN_REDIS_TEXT} or newer needed){await _staff_replicas(s, store)}")
        finally:
            await store.close()
    return asyncio.run(go())


async def _staff_replicas(s: Settings, store: Store) -> str:
    """With ``[staff_writes] replicas``: that many are connected, or every staff action
    would wait out ``timeout_ms`` and be reported as maybe not kept."""
    want = s.staff_writes.replicas
    if not want:
        return ""
    have = await store.connected_replicas()
    if have < want:
        raise StoreError(f"[staff_writes] replicas = {want}, but the primary has {have} replica(s) "
                         f"connected: every staff action would wait {s.staff_writes.timeout_ms} ms "
                         "and be reported as maybe not kept")
    return f"; staff actions confirmed by {want} of its {have} replica(s)"


def _check_sentinel(s: Settings) -> str:
    return sentinel_line(s.redis)


def _check_relay(s: Settings) -> str:
    if s.mail.transport == "outbox":
        s.outbox_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=s.outbox_dir, prefix=".check-"):
            pass
        return f"outbox {s.outbox_dir} is writable (transport = outbox: no relay used)"
    c = s.smtp

    async def go() -> str:
        smtp = smtp_client(c)
        await smtp.connect()  # EHLO, STARTTLS/TLS and AUTH exactly as the worker does them
        try:
            said = ["EHLO ok"]
            if c.tls or c.starttls:
                said.append("TLS ok")
            if c.username:
                said.append(f"AUTH ok as {c.username}")
            return f"relay {c.host}:{c.port}: " + ", ".join(said)
        finally:
            await smtp.quit()
    return asyncio.run(go())


def check_templates(s: Settings) -> str:
    """Load and render both notices with sample data (``check``, and the worker at start:
    a template that fails would otherwise fail every notice until the hold is phoned)."""
    try:
        return _render_samples(s)
    except jinja2.TemplateError as e:  # loading errors are ConfigErrors already
        raise ConfigError("[mail] templates_dir",
                          f"a template in {s.templates_dir} does not render: {e}") from None


def _render_samples(s: Settings) -> str:
    composer = Composer(s)
    branch = next(iter(s.branches))
    ev = HoldReady.model_validate({
        "event_id": "check", "type": "hold_ready", "hold_id": "CHECK", "card_number": "0",
        "item": {"title": "点検用の資料", "material": "book"}, "pickup_branch": branch,
        "ready_at": datetime.now(TOKYO), "pickup_by": date.today(), "contact": "email"})
    n = composer.hold_ready(ev, "check@example.jp", "check")
    c = composer.confirmation("check@example.jp", "000000", branch, "docomo", "1月1日(木)", "check")
    return f"templates in {s.templates_dir} render ({len(n.data)} and {len(c.data)} bytes)"


def _check_bounces(s: Settings) -> str:
    from ..mailbox.watch import check_mailbox
    return check_mailbox(s)


CHECKS: list[tuple[str, Callable[[Settings], str]]] = [
    ("redis", _check_redis), ("mail", _check_relay), ("templates", check_templates)]


def cmd_check(args: argparse.Namespace, s: Settings) -> int:
    if getattr(args, "what", None) == "domain":
        from .sender import cmd_check_domain
        return cmd_check_domain(args, s)
    failed = 0
    print(f"ok    settings  {s.source}; {len(s.branches)} branches, transport {s.mail.transport}")
    # the Sentinel view when [redis] sentinels is set; the bounce mailbox when one is set
    checks = [("sentinel", _check_sentinel)] * bool(s.redis.sentinels) + CHECKS + \
        [("bounces", _check_bounces)] * bool(s.bounces.mailbox)
    no_primary = redis_failed = False
    for name, check in checks:
        if no_primary and name == "redis":
            continue  # it would wait [redis] failover_wait_s for a primary, to say the same
        try:
            print(f"ok    {name:<9} {check(s)}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the rest
            failed += 1
            no_primary = no_primary or isinstance(e, NoPrimary)
            redis_failed = redis_failed or name == "redis"
            print(f"FAIL  {name:<9} {type(e).__name__}: {e}", flush=True)
    if not (no_primary or redis_failed):  # read from Redis: the redis line said why already
        failed += _last_sender_problem(s)
        failed += _digest_windows(s)
    return 1 if failed else 0


OVERDUE_S = 60  # a window this far past its end: no worker process is polling for it


def _digest_windows(s: Settings) -> int:
    """The digest windows waiting (worker/queue/windows.py): 1 if one is overdue."""
    import time

    async def go() -> tuple[int, int | None]:
        store = Store.from_settings(s)
        try:
            return await store.digest.waiting()
        finally:
            await store.close()
    try:
        n, first_ms = asyncio.run(go())
    except StoreError:
        return 0  # the redis line is the one to act on
    except REDIS_UNREACHABLE:
        return 0  # Redis went away since the redis line: that line is the one to act on
    late = time.time() - first_ms / 1000 if first_ms is not None else 0.0
    if late > OVERDUE_S:
        print(f"FAIL  digests   {_windows(n)} open, the oldest {late:.0f} s past its end: no"
              " worker process is sending them (start `omitama-notify worker`)")
        return 1
    print("ok    digests   " + (f"{_windows(n)} open, the next ends in {max(0.0, -late):.0f} s"
                                if n else "no window open"))
    return 0


def _windows(n: int) -> str:
    return f"{n} digest window" + ("s" if n != 1 else "")


def _last_sender_problem(s: Settings) -> int:
    """The open sender-problem alert, if any (worker/app/sender_problems.py): 1 if there is."""
    from ..app import sender_problems
    from .review import sender_problem_text

    async def go() -> dict[str, Any] | None:
        store = Store.from_settings(s)
        try:
            return await sender_problems.current(store)
        finally:
            await store.close()
    try:
        alert = asyncio.run(go())
    except StoreError:
        return 0  # the redis line above said so already
    except REDIS_UNREACHABLE:
        return 0  # Redis went away since the redis line: that line is the one to act on
    if alert is None:
        print("ok    sender    no failure caused by our sender is open (the sending domain's "
              "SPF, DKIM, DMARC and MX: omitama-notify check domain)")
        return 0
    print("FAIL  sender    " + sender_problem_text(alert).replace("\n", "\n          "))
    return 1


def add_ops_commands(sub: Any) -> None:
    c = sub.add_parser("check", help="check settings, Redis, the relay and the templates; "
                       "check domain: the sending domain's SPF, DKIM, DMARC and MX")
    c.add_argument("what", nargs="?", choices=["domain"],
                   help="domain: look the sending domain up in DNS (no Redis needed)")
    c.set_defaults(fn=cmd_check)
