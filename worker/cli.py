"""``omitama-notify``: worker, enqueue, review, bounces.

Every command loads the settings first; a bad setting ends the program with one
line naming the key (exit 2). ``--json`` output is one JSON object per line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import redis

from .errors import ConfigError, NotifyError
from .bounce_cli import add_bounce_commands
from .ops_cli import add_ops_commands
from .outbox_cli import add_outbox_command
from .review_cli import add_review_commands
from .settings import Settings, get_settings
from .web.cli import add_web_commands


# -- worker ---------------------------------------------------------------------

def cmd_worker(args: argparse.Namespace, s: Settings) -> int:
    from .devredis import ensure_redis
    from .ops_cli import check_templates

    check_templates(s)  # a broken template stops the start, not every notice

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
    if s.metrics.port:
        from .process_setup import metrics_env, wipe_metrics_dir
        metrics_env(s)
        wipe_metrics_dir()
        print(f"metrics: http://{s.metrics.host}:{s.metrics.port}/metrics", flush=True)
    argv = [sys.executable, "-m", "dramatiq", "worker.actors", "--queues", "notifications",
            "--processes", str(s.worker.processes), "--threads", str(s.worker.threads)]
    if args.once:
        return __import__("subprocess").call(argv)
    os.execv(sys.executable, argv)
    return 0  # not reached


# -- enqueue --------------------------------------------------------------------

def cmd_enqueue(args: argparse.Namespace, s: Settings) -> int:
    from .enqueue import enqueue_text

    # bytes: a line that is not UTF-8 is refused by itself (worker.enqueue)
    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(args.file, "rb") as fh:
            data = fh.read()
    ok, refused = enqueue_text(data, s, source=args.file, err=sys.stderr)
    print(f"enqueued {ok}, refused {refused}")
    return 0 if refused == 0 and ok > 0 else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omitama-notify", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run the dramatiq worker with the [worker] settings")
    w.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    w.set_defaults(fn=cmd_worker)

    e = sub.add_parser("enqueue", help="validate events (JSON or JSON lines) and enqueue them")
    e.add_argument("file", help="a file, or - for standard input")
    e.set_defaults(fn=cmd_enqueue)

    add_review_commands(sub)
    add_outbox_command(sub)
    add_ops_commands(sub)

    add_bounce_commands(sub)
    # the staff web page (worker/web) adds its commands here
    add_web_commands(sub)
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
    except redis.RedisError as e:  # Redis went away in the middle of a command
        print(f"omitama-notify: Redis failed during the command ({e}); it may have stopped "
              "part-way: check its effect before running it again", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
