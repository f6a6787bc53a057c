"""``omitama-notify outbox``: read the outbox as a person would (decoded, newest last)."""

from __future__ import annotations

import argparse
import email
import email.policy
from pathlib import Path

from ..settings import Settings


def show(path: Path) -> str:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    head = "\n".join(f"{h}: {msg[h]}" for h in ("Date", "From", "To", "Subject", "Message-ID"))
    return f"== {path.name}\n{head}\n\n{msg.get_content().rstrip()}\n"


def cmd_outbox(args: argparse.Namespace, s: Settings) -> int:
    files = sorted(s.outbox_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime)
    if not files:
        print(f"(no mail in {s.outbox_dir})")
        return 0
    for f in files[-args.last:]:
        print(show(f))
    return 0


def add_outbox_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    o = sub.add_parser("outbox", help="show the newest mails in the outbox, decoded")
    o.add_argument("--last", type=int, default=3, help="how many (default 3)")
    o.set_defaults(fn=cmd_outbox)
