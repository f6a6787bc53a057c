"""``omitama-notify``: worker, enqueue, review, bounces.

Every command loads the settings first; a bad setting ends the program with one
line naming the key (exit 2). ``--json`` output is one JSON object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import Any, Awaitable, Callable, TextIO

from .errors import ConfigError, NotifyError
from .settings import Settings, get_settings
from .store import Store


def _emit(rows: list[dict[str, Any]], as_json: bool, fields: list[str], out: TextIO) -> None:
    if as_json:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    if not rows:
        out.write("(none)\n")
    for row in rows:
        out.write("  ".join(str(row.get(f, "") if row.get(f) is not None else "-")
                            for f in fields) + "\n")


def with_store(settings: Settings, fn: Callable[[Store], Awaitable[int]]) -> int:
    async def run() -> int:
        store = Store.connect(settings.redis.url, settings.redis.key_prefix)
        try:
            await store.ping()
            return await fn(store)
        finally:
            await store.close()
    return asyncio.run(run())


# -- worker ---------------------------------------------------------------------

def cmd_worker(args: argparse.Namespace, s: Settings) -> int:
    from .devredis import ensure_redis

    started = ensure_redis(s.redis.url, s.var_dir / "redis", start_private=s.redis.start_private)
    if started:
        print(started, flush=True)
    if s.mail.transport == "outbox":
        s.outbox_dir.mkdir(parents=True, exist_ok=True)
        print(f"mail transport: outbox — each mail is written as an .eml file to {s.outbox_dir}",
              flush=True)
    else:
        print(f"mail transport: smtp — relay {s.smtp.host}:{s.smtp.port}", flush=True)
    print(f"queue 'notifications' on {s.redis.url.split('@')[-1]} (namespace "
          f"{s.redis.namespace!r}); {s.worker.processes} process(es) × {s.worker.threads} "
          "thread(s); Ctrl-C stops", flush=True)
    argv = [sys.executable, "-m", "dramatiq", "worker.actors", "--queues", "notifications",
            "--processes", str(s.worker.processes), "--threads", str(s.worker.threads)]
    if args.once:
        return __import__("subprocess").call(argv)
    os.execv(sys.executable, argv)
    return 0  # not reached


# -- enqueue --------------------------------------------------------------------

def cmd_enqueue(args: argparse.Namespace, s: Settings) -> int:
    from .enqueue import enqueue_text

    text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    ok, refused = enqueue_text(text, s, source=args.file, err=sys.stderr)
    print(f"enqueued {ok}, refused {refused}")
    return 0 if refused == 0 and ok > 0 else 1


# -- review ---------------------------------------------------------------------

def cmd_calls(args: argparse.Namespace, s: Settings) -> int:
    if args.branch and args.branch not in s.branches:
        raise NotifyError(f"unknown branch {args.branch!r}; expected one of {', '.join(s.branches)}")

    async def run(store: Store) -> int:
        rows = await store.calls(args.branch)
        out = [{k: r.get(k) for k in ("hold_id", "card_number", "pickup_branch", "pickup_by",
                                      "reason", "reason_ja", "title", "added_at", "detail")}
               for r in rows]
        _emit(out, args.json, ["pickup_by", "pickup_branch", "hold_id", "card_number",
                               "reason_ja", "title"], sys.stdout)
        return 0
    return with_store(s, run)


def cmd_called(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        entry = await store.mark_called(args.hold_id, {"hold_id": args.hold_id,
                                                        "staff": args.staff, "note": args.note})
        if entry is None:
            raise NotifyError(f"hold {args.hold_id} is not on the phone-call list "
                              "(already called, cancelled, picked up, or never listed)")
        await store.audit(entry["card_number"], {
            "what": f"phoned about hold {args.hold_id}", "staff": args.staff,
            "why": args.note or "", "branch": entry.get("pickup_branch")})
        print(f"hold {args.hold_id}: marked called by {args.staff}")
        return 0
    return with_store(s, run)


def cmd_rejected(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        rows = await store.rejected()
        _emit(rows, args.json, ["received_at", "event_id", "type", "error"], sys.stdout)
        return 0
    return with_store(s, run)


def cmd_history(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        rows = await store.history(args.card)
        _emit(rows, args.json, ["at", "what", "staff", "why", "branch"], sys.stdout)
        return 0
    return with_store(s, run)


def cmd_classify(args: argparse.Namespace, s: Settings) -> int:
    from .bounces.cli import classify_paths

    for obj in classify_paths(args.paths):
        if args.json:
            print(json.dumps(obj, ensure_ascii=False), flush=True)
        else:
            print(f"{obj.get('file')}: {obj.get('error') or obj.get('reason')} "
                  f"{obj.get('status') or ''} {obj.get('recipient') or ''}".rstrip())
    return 0


def _staff(value: str) -> str:
    if not value.strip() or len(value) > 64 or any(ord(c) < 32 for c in value):
        raise argparse.ArgumentTypeError("staff id must be 1–64 printable characters")
    return value.strip()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omitama-notify", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run the dramatiq worker with the [worker] settings")
    w.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    w.set_defaults(fn=cmd_worker)

    e = sub.add_parser("enqueue", help="validate events (JSON or JSON lines) and enqueue them")
    e.add_argument("file", help="a file, or - for standard input")
    e.set_defaults(fn=cmd_enqueue)

    r = sub.add_parser("review", help="staff review").add_subparsers(dest="what", required=True)
    c = r.add_parser("calls", help="the phone-call list, by pickup deadline")
    c.add_argument("--branch")
    c.add_argument("--json", action="store_true")
    c.set_defaults(fn=cmd_calls)
    d = r.add_parser("called", help="mark a hold on the call list as phoned")
    d.add_argument("hold_id")
    d.add_argument("--staff", required=True, type=_staff)
    d.add_argument("--note", default="")
    d.set_defaults(fn=cmd_called)
    j = r.add_parser("rejected", help="events refused by validation, with the reason")
    j.add_argument("--json", action="store_true")
    j.set_defaults(fn=cmd_rejected)
    h = r.add_parser("history", help="a patron's audit log")
    h.add_argument("card")
    h.add_argument("--json", action="store_true")
    h.set_defaults(fn=cmd_history)

    b = sub.add_parser("bounces", help="bounce mails").add_subparsers(dest="what", required=True)
    bc = b.add_parser("classify", help="classify bounce mails; changes nothing")
    bc.add_argument("paths", nargs="+")
    bc.add_argument("--json", action="store_true")
    bc.set_defaults(fn=cmd_classify)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # commands print what matters themselves; the worker's logging is dramatiq's
    logging.basicConfig(level=logging.ERROR, format="omitama-notify: %(message)s")
    try:
        settings = get_settings()
        return int(args.fn(args, settings))
    except ConfigError as e:
        print(f"omitama-notify: {e}", file=sys.stderr)
        return 2
    except NotifyError as e:
        print(f"omitama-notify: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"omitama-notify: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
