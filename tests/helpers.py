"""Test helpers: a real SMTP server that can refuse, a real in-process dramatiq worker."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_wire: list[str]      # the RCPT TO argument exactly as it came over the wire
    rcpt_tos: list[str]       # as aiosmtpd parsed them (unquoted)
    data: bytes
    peer: str = ""            # the client's address: which host sent it
    at: float = 0.0           # time.time() when the final "." was read


@dataclass
class SinkState:
    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    # address (as parsed) → list of replies to give at RCPT, used one per attempt;
    # the last one repeats. None means accept.
    rcpt_rules: dict[str, list[str | None]] = field(default_factory=dict)
    data_reply: str | None = None
    # a slow relay: every reply (the greeting too) comes this many seconds late
    reply_delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _RecordingSMTP(SMTP):
    def __init__(self, *args: Any, state: SinkState, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state = state
        self._wire: list[str] = []
        self._continuing = False  # the last line pushed was not the last of its reply

    def connection_made(self, transport: Any) -> None:
        with self._state.lock:
            self._state.connections += 1
        super().connection_made(transport)

    async def push(self, status: Any) -> None:
        # once per reply: the lines of a multi-line reply ("250-…") follow at once
        text = status.decode() if isinstance(status, bytes) else status
        if self._state.reply_delay_s and not self._continuing:
            await asyncio.sleep(self._state.reply_delay_s)
        self._continuing = text[3:4] == "-"
        await super().push(status)

    async def smtp_MAIL(self, arg: str) -> None:
        self._wire = []
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str) -> None:
        self._wire.append(arg)
        await super().smtp_RCPT(arg)


class _Handler:
    def __init__(self, state: SinkState, sink: "SmtpSink") -> None:
        self.state = state
        self.sink = sink

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        with self.state.lock:
            rules = self.state.rcpt_rules.get(address)
            reply = rules.pop(0) if rules and len(rules) > 1 else (rules[0] if rules else None)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.state.data_reply:
            return self.state.data_reply
        with self.state.lock:
            self.state.messages.append(Received(
                envelope.mail_from, list(server._wire), list(envelope.rcpt_tos),  # type: ignore[attr-defined]
                envelope.original_content or b"", session.peer[0] if session.peer else "",
                time.time()))
        return "250 2.0.0 Ok: queued"


class _Controller(Controller):
    def __init__(self, handler: _Handler, state: SinkState, **kw: Any) -> None:
        self._sink_state = state
        super().__init__(handler, **kw)

    def factory(self) -> SMTP:
        return _RecordingSMTP(self.handler, state=self._sink_state, **self.SMTP_kwargs)


class SmtpSink:
    """aiosmtpd on loopback (or on ``host``) that records messages and refuses on request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.state = SinkState()
        self.port = free_port(host)
        self.controller = _Controller(_Handler(self.state, self), self.state,
                                      hostname=host, port=self.port)

    def start(self) -> None:
        self.controller.start()
        # aiosmtpd's start() opens one connection to check the server is up
        with self.state.lock:
            self.state.connections = 0

    def stop(self) -> None:
        self.controller.stop()

    def refuse(self, address: str, *replies: str | None) -> None:
        self.state.rcpt_rules[address] = list(replies)

    @property
    def messages(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.messages)


def wait_for(cond: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02, *,
             what: str = "condition", ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """``cond()``'s first true value within ``timeout`` s. An exception of ``ignore``
    (a server not up yet: refused, loading) counts as "not yet", and the last one is
    named in the AssertionError when time runs out."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
        except ignore as e:
            last, value = e, None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s"
                         + (f" (last error: {last})" if last else ""))


def settle(seconds: float) -> None:
    """Let ``seconds`` pass on purpose: a quiet period the test is about — a relay or
    Redis kept down for an outage, or a pause after everything is done so that a late
    duplicate or stray write would show — never to wait for something to happen (that is
    :func:`wait_for`'s job)."""
    time.sleep(seconds)


def lease_over(hold: dict[str, str]) -> bool:
    """Whether the claim lease recorded on a hold (``lease_until``, ms) has run out, by
    the same clock the claim used (the caller's: worker.store.core.now_ms)."""
    return time.time() * 1000 > int(hold.get("lease_until") or 0)


async def until_lease_over(store: Any, hold_id: str, timeout: float = 5.0) -> None:
    """Wait (in a coroutine) until the hold's lease has run out."""
    deadline = time.monotonic() + timeout
    while not lease_over(await store.get_hold(hold_id)):
        if time.monotonic() > deadline:
            raise AssertionError(f"the lease of hold {hold_id} did not run out in {timeout} s")
        await asyncio.sleep(0.001)


def queue_empty(settings: Any) -> bool:
    """Every message of the worker's queue (and its delayed queue) acknowledged and no
    digest window open: the in-process worker has finished with everything sent to it."""
    from worker.queue.actors import broker
    from worker.store.queue_keys import QueueKeys, delayed

    c, q = broker.client, QueueKeys(settings.redis.namespace)
    return (c.llen(q.queue("notifications")) == 0 and c.hlen(q.messages("notifications")) == 0
            and c.hlen(q.messages(delayed("notifications"))) == 0
            and windows_open(c, settings.redis.key_prefix) == 0)


def windows_open(client: Any, prefix: str) -> int:
    """Digest windows not yet sent (their entries in ``gather_due``): work still to come,
    as a queued message is (a window has no message since 2026-12-07)."""
    return int(client.zcard(f"{prefix}gather_due"))


def variant(settings: Any, **sections: dict[str, Any]) -> Any:
    """A copy of the settings with some keys of some sections replaced."""
    # validated like the real loader, so a test cannot build settings the loader would refuse
    update = {name: type(getattr(settings, name)).model_validate(
        {**dict(getattr(settings, name)), **vals}) for name, vals in sections.items()}
    return settings.model_copy(update=update)


SEND_LEASE_S = 4.0  # settings_for's claim lease


def settings_for(settings: Any, smtp_sink: Any, gather_s: float = 0.0, *,
                 lease_s: float = SEND_LEASE_S, backoff_s: float = 0.5) -> Any:
    """The test settings mailing over SMTP to ``smtp_sink`` (a pool of 2, 2 s timeout),
    with a digest window of ``gather_s``, a lease of ``lease_s`` and retries 0.2 s up to
    ``backoff_s`` apart (``backoff_s`` of 1 s or more: 30 s at least, a retry that does not
    come within the test)."""
    return variant(settings, mail={"transport": "smtp"},
                   smtp={"port": smtp_sink.port, "pool_size": 2, "timeout": 2},
                   delivery={"min_backoff_s": 0.2 if backoff_s < 1 else 30.0,
                             "max_backoff_s": backoff_s, "lease_s": lease_s},
                   digest={"gather_s": gather_s})


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


@contextmanager
def run_worker(settings: Any, threads: int = 4) -> Iterator[Any]:
    """A real dramatiq worker (the project's broker, real Redis) in this process."""
    import dramatiq

    import worker.runtime as rtmod
    from worker.queue.actors import broker
    from worker.runtime import Runtime

    rtmod._runtime = Runtime.create(settings)
    w = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=50)
    w.start()
    try:
        yield rtmod._runtime
    finally:
        w.stop(timeout=10_000)
        # each Worker registers its own middleware on the broker; drop the stopped one
        broker.middleware[:] = [m for m in broker.middleware
                                if type(m).__name__ != "_WorkerMiddleware"]
        rtmod.reset_runtime()


def runtime_do(settings: Any, fn: Callable[[Any], Any]) -> Any:
    """Run ``await fn(runtime)`` with a process's runtime (store, composer, transport)."""
    from worker.runtime import Runtime

    async def go() -> Any:
        rt = Runtime.create(settings)
        try:
            return await fn(rt)
        finally:
            await rt.close()
    return asyncio.run(go())


def with_store(settings: Any, fn: Callable[[Any], Any]) -> Any:
    """Run ``await fn(store)`` against the real Redis, from synchronous test code (the
    commands' own helper)."""
    from worker.cli.common import with_store as run_with_store
    return run_with_store(settings, fn)


def hold_event(hold_id: str = "H-1", card: str = "C-1", **over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": f"ev-{hold_id}", "type": "hold_ready", "hold_id": hold_id,
        "card_number": card,
        "item": {"title": "吾輩は猫である", "author": "夏目漱石", "material": "book"},
        "pickup_branch": "ogawa", "ready_at": "2026-11-29T10:00:00+09:00",
        "pickup_by": "2099-12-05", "contact": "email", "patron_name": "山田 太郎"}
    ev.update(over)
    return ev


def _registration(card: str, address: str | None, branch: str,
                  code: tuple[str, str] | None = None) -> Any:
    """The validated registration the website would send for ``card`` (code 000000;
    ``code``: its (salt, hash) when already computed — PBKDF2 takes ~25 ms)."""
    from datetime import datetime, timezone

    from worker.contact.addresses import normalise_address
    from worker.contact.codes import hash_code
    from worker.contact.changes import Registration
    from worker.masking import mask_address

    addr = normalise_address(address or f"{card.lower()}@example.jp")
    salt, digest = code or hash_code("000000")
    now = datetime.now(timezone.utc)
    return Registration(
        display=addr.display, envelope=addr.envelope, key=addr.key, carrier=addr.carrier,
        typo_suggestion=addr.typo_suggestion, branch=branch, registered_at=now.isoformat(),
        registered_ms=int(now.timestamp() * 1000), event_id=f"setup-{card}",
        code_salt=salt, code_hash=digest, code_expires_ms=int(now.timestamp() * 1000) + 60_000,
        masked=mask_address(addr.display))


async def set_contact(store: Any, card: str, state: Any, *, address: str | None = None,
                      staff: str = "S01", why: str = "test setup",
                      branch: str = "ogawa") -> None:
    """Bring ``card`` to contact ``state`` the way production does — registered on the
    website, approved by staff, suspended by a bounce — through the same transitions and
    store function as the worker (the address index included); no mail is sent."""
    from worker.contact import ContactState
    from worker.contact.changes import approved, registered, removed, suspended

    reg = store.contacts
    if state is ContactState.NONE:
        await reg.apply(card, lambda b: removed(b, staff, why))
        return
    registration = _registration(card, address, branch)
    await reg.apply(card, lambda b: registered(b, registration))
    if state is ContactState.PENDING:
        return
    await reg.apply(card, lambda b: approved(card, b, staff, code_hash=None, reason=why,
                                             masked=registration.masked))
    if state is ContactState.SUSPENDED:
        await reg.apply(card, lambda b: suspended(b, "filtered", why))


async def activate_many(store: Any, addresses: dict[str, str], *, staff: str = "S01",
                        why: str = "bulk setup", branch: str = "ogawa",
                        batch: int = 500) -> None:
    """``set_contact(..., ACTIVE)`` for many cards (card → address) at once: the same two
    transitions (registered, then approved) applied ``batch`` cards per MULTI
    (``Registry.apply_many``), the receipt code hashed once for all."""
    from worker.contact.changes import approved, registered
    from worker.contact.codes import hash_code

    reg = store.contacts
    code = hash_code("000000")
    cards = list(addresses)
    for i in range(0, len(cards), batch):
        regs = {c: _registration(c, addresses[c], branch, code) for c in cards[i:i + batch]}
        await reg.apply_many([(c, lambda b, r=r: registered(b, r)) for c, r in regs.items()])
        await reg.apply_many([
            (c, lambda b, c=c, r=r: approved(c, b, staff, code_hash=None, reason=why,
                                             masked=r.masked)) for c, r in regs.items()])


@contextmanager
def daemon_dir(name: str) -> Iterator[Any]:
    """A throw-away folder for a private Postfix or Dovecot, directly under /tmp and
    readable by their unprivileged users (nobody, postfix). Not under pytest's tmp_path:
    pytest keeps its base folder at mode 0700 and resets it whenever another pytest run
    starts, which locks those users out mid-test ("Permission denied" in their logs)."""
    import shutil
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix=f"omitama-{name}-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
