"""omitama-notify: hold notices by e-mail for Omitama City Library.

Every command loads the settings first; a bad setting ends the program with one
line naming the key (exit 2). ``--json`` output is one JSON object per line. A staff
action written but not confirmed by ``[staff_writes] replicas`` ends with one line and
exit 75 (EX_TEMPFAIL: run it again; every staff action is safe to repeat); a repeated
action that finds itself done says so and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..errors import AlreadyDone, ConfigError, NotConfirmed, NotifyError, StoreError
from .bounces import add_bounce_commands
from .holds import add_holds_commands
from .ops import add_ops_commands
from .outbox import add_outbox_command
from .reminders import add_reminder_commands
from .patron import add_patron_commands
from .retention import add_retention_commands
from .review import add_review_commands
from ..settings import Settings, get_settings
from ..store.client import RedisError
from .sender import add_sender_commands
from .staff import add_staff_commands
from .stats import add_stats_command

# a staff action was written but no replica confirmed it in time: repeat it (sysexits'
# EX_TEMPFAIL, "try again later"); docs/operations.md and docs/staff-guide.ja.md name it
EXIT_NOT_CONFIRMED = 75


# -- worker ---------------------------------------------------------------------

def cmd_worker(args: argparse.Namespace, s: Settings) -> int:
    from ..store.connect import describe
    from ..store.devredis import redis_for
    from .ops import check_templates

    print(f"settings: {s.source}", flush=True)
    check_templates(s)  # a broken template stops the start, not every notice

    with redis_for(s.redis, s.var_dir / "redis", say=lambda line: print(line, flush=True),
                   require=True) as own:
        if s.mail.transport == "outbox":
            s.outbox_dir.mkdir(parents=True, exist_ok=True)
            print(f"mail transport: outbox — each mail is written as an .eml file to {s.outbox_dir}",
                  flush=True)
        else:
            print(f"mail transport: smtp — relay {s.smtp.host}:{s.smtp.port}", flush=True)
        where = describe(s.redis) if s.redis.sentinels else s.redis.url.split('@')[-1]
        print(f"queue 'notifications' on {where} (namespace "
              f"{s.redis.namespace!r}); {s.worker.processes} process(es) × {s.worker.threads} "
              "thread(s); Ctrl-C stops", flush=True)
        if s.metrics.port:
            from ..queue.process_setup import metrics_env, wipe_metrics_dir
            metrics_env(s)
            wipe_metrics_dir()
            print(f"metrics: http://{s.metrics.host}:{s.metrics.port}/metrics", flush=True)
        # dramatiq's command line, with log lines in Tokyo time (worker/queue/dramatiq_cli.py)
        argv = [sys.executable, "-m", "worker.queue.dramatiq_cli", "worker.queue.actors",
                "--queues", "notifications", "--processes", str(s.worker.processes), "--threads", str(s.worker.threads)]
        if own is None:  # the usual case: dramatiq takes this process over
            os.execv(sys.executable, argv)
        # this process started the private Redis: it waits for dramatiq, then stops it
        return _run_until_stopped(argv)


def _run_until_stopped(argv: list[str]) -> int:
    """Run dramatiq as a child; a stop signal reaches it once, and its status is ours."""
    import signal
    import subprocess

    child = subprocess.Popen(argv)

    def forward(signum: int, frame: object) -> None:
        child.send_signal(signum)
    # Ctrl-C in a terminal reaches dramatiq (our process group) by itself: a second
    # SIGINT from us would make it stop hard; SIGTERM/SIGHUP (kill, a service manager)
    # are sent to this process only, so they are passed on
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    code = child.wait()
    return code if code >= 0 else 128 - code


# -- enqueue --------------------------------------------------------------------

def cmd_enqueue(args: argparse.Namespace, s: Settings) -> int:
    from .enqueue import enqueue_text

    # bytes: a line that is not UTF-8 is refused by itself (worker.cli.enqueue)
    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(args.file, "rb") as fh:
            data = fh.read()
    ok, refused = enqueue_text(data, s, source=args.file, err=sys.stderr)
    print(f"enqueued {ok}, refused {refused}")
    return 0 if refused == 0 and ok > 0 else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="omitama-notify", description=__doc__.split("\n")[0],
        epilog="omitama-notify COMMAND --help tells more about each command.")
    sub = p.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run the dramatiq worker with the [worker] settings")
    w.set_defaults(fn=cmd_worker)

    e = sub.add_parser("enqueue", help="validate events (JSON or JSON lines) and enqueue them")
    e.add_argument("file", help="a file, or - for standard input")
    e.set_defaults(fn=cmd_enqueue)

    add_review_commands(sub)
    add_retention_commands(sub)
    add_patron_commands(sub)
    add_outbox_command(sub)
    add_ops_commands(sub)

    add_bounce_commands(sub)
    add_reminder_commands(sub)
    add_holds_commands(sub)
    add_stats_command(sub)
    add_sender_commands(sub)
    # the staff web page (worker/web) adds its commands here
    add_staff_commands(sub)
    _describe(p)
    return p


def _describe(parser: argparse.ArgumentParser) -> None:
    """``COMMAND --help`` opens with the line the command list shows for it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                if child.description is None:
                    child.description = helps.get(name)
                _describe(child)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # commands print what matters themselves; the worker's logging is dramatiq's
    logging.basicConfig(level=logging.ERROR, format="omitama-notify: %(message)s")
    settings: Settings | None = None
    try:
        settings = get_settings()
        if not _uses_redis(args):
            return int(args.fn(args, settings))
        from ..store.devredis import redis_for
        # nothing answers and [redis] start_private: a private Redis for this command only
        with redis_for(settings.redis, settings.var_dir / "redis",
                       say=lambda line: print(f"omitama-notify: {line}", file=sys.stderr,
                                              flush=True)):
            return int(args.fn(args, settings))
    except ConfigError as e:
        print(f"omitama-notify: {e}", file=sys.stderr)
        return 2
    except StoreError as e:
        print(f"omitama-notify: {str(e).rstrip('.')}{_how_to_get_redis(e, settings)}", file=sys.stderr)
        return 1
    except AlreadyDone as e:  # a staff action repeated: done, nothing changed
        print(f"omitama-notify: {e}")
        return 0
    except NotConfirmed as e:  # written; no replica confirmed it: repeat it
        print(f"omitama-notify: {e}", file=sys.stderr)
        return EXIT_NOT_CONFIRMED
    except NotifyError as e:
        print(f"omitama-notify: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"omitama-notify: {e}", file=sys.stderr)
        return 1
    except RedisError as e:  # Redis went away in the middle of a command
        print(f"omitama-notify: Redis failed during the command ({e}); it may have stopped "
              "part-way: check its effect before running it again", file=sys.stderr)
        return 1


def _uses_redis(args: argparse.Namespace) -> bool:
    """Commands that need Redis (the worker sees to its own)."""
    if args.command == "check":
        return getattr(args, "what", None) != "domain"
    if args.command in ("review", "enqueue", "staff", "staff-web", "purge", "patron",
                        "stats", "holds"):
        return True
    return args.command == "bounces" and getattr(args, "what", None) == "ingest"


def _how_to_get_redis(e: StoreError, s: Settings | None) -> str:
    """"cannot reach Redis" alone leaves a newcomer stuck: say how to get one."""
    if s is None or not str(e).startswith("cannot reach Redis"):
        return ""
    from ..store.devredis import hint
    return f"; {hint(s.redis)}"


if __name__ == "__main__":
    sys.exit(main())
