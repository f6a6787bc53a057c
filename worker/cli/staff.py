"""``omitama-notify staff …`` (accounts) and ``omitama-notify staff-web`` (the page)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from ..errors import NotifyError
from ..settings import Settings
from ..store.core import Store
from ..web.auth import Accounts, check_password, check_staff_id
from .common import with_store


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin.isatty():
        raise NotifyError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass(f"password for {args.staff_id}: ")
    check_password(first)
    if getpass.getpass("the same password again: ") != first:
        raise NotifyError("the two passwords differ; nothing was changed")
    return first


def _branch(args: argparse.Namespace, s: Settings) -> str | None:
    b = getattr(args, "branch", None)
    if b and b not in s.branches:
        raise NotifyError(f"unknown branch {b!r}; expected one of {', '.join(s.branches)}")
    return b


def cmd_staff_add(args: argparse.Namespace, s: Settings) -> int:
    check_staff_id(args.staff_id)
    branch = _branch(args, s)
    password = check_password(_read_password(args))

    async def run(store: Store) -> int:
        await Accounts(store, s.web).add(args.staff_id, password, branch, by=_operator())
        print(f"staff account {args.staff_id} created"
              + (f" (branch {branch})" if branch else "")
              + "; log in at the staff web page (omitama-notify staff-web)")
        return 0
    return with_store(s, run)


def cmd_staff_passwd(args: argparse.Namespace, s: Settings) -> int:
    check_staff_id(args.staff_id)
    password = check_password(_read_password(args))

    async def run(store: Store) -> int:
        accounts = Accounts(store, s.web)
        current = await accounts.branch(args.staff_id)
        await accounts.add(args.staff_id, password, _branch(args, s) or current, replace=True,
                           by=_operator())
        print(f"staff account {args.staff_id}: new password set; its sessions have ended")
        return 0
    return with_store(s, run)


def cmd_staff_remove(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        if not await Accounts(store, s.web).remove(args.staff_id, by=_operator()):
            raise NotifyError(f"there is no staff account {args.staff_id}")
        print(f"staff account {args.staff_id} removed (its sessions end at once)")
        return 0
    return with_store(s, run)


def cmd_staff_list(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        rows = await Accounts(store, s.web).list()
        if not rows:
            print("(none)")
        for r in rows:
            print(f"{r['staff_id']}  {r['branch'] or '-'}  created {r['created_at']}  "
                  f"sessions {r['sessions']}")
        return 0
    return with_store(s, run)


def cmd_staff_logout_all(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        ended = await Accounts(store, s.web).logout_all(args.staff_id, by=_operator())
        print(f"staff account {args.staff_id}: {ended} session(s) ended; "
              "the next page opened with any of them asks for the password")
        return 0
    return with_store(s, run)


def cmd_staff_log(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        rows = await Accounts(store, s.web).log()
        if args.json:
            for r in rows:
                print(json.dumps(r, ensure_ascii=False))
            return 0
        if not rows:
            print("(none)")
        for r in rows:
            print(f"{r['at']}  {r['staff_id']}  {r['what']}"
                  + (f" (branch {r['branch']})" if r.get("branch") else "")
                  + f"  by {r.get('by') or '?'}")
        return 0
    return with_store(s, run)


def _operator() -> str:
    """Who runs the command, for the account log: the OS user (and sudo's caller)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container, say)
        user = f"uid {os.getuid()}"
    caller = os.environ.get("SUDO_USER")
    return f"{caller} (as {user})" if caller and caller != user else user


def cmd_staff_web(args: argparse.Namespace, s: Settings) -> int:
    import uvicorn

    from .. import logs
    from ..web.app import create_app

    logs.long_running(s.logging.format, s.logging.level)
    host = args.host or s.web.host
    port = args.port or s.web.port
    if not s.web.session_secret.get_secret_value():
        print("note: [web] session_secret is not set; a random one is used, so everyone is "
              "logged out when this stops (set OMITAMA_NOTIFY_WEB__SESSION_SECRET)", flush=True)
    print(f"staff web page: http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For from any local
    # process; the page itself trusts it only from [web] trusted_proxies
    # log_config=None: uvicorn's lines go through our handler (format, mask, level);
    # no access log: the page logs what staff do themselves, a line per request is noise
    uvicorn.run(create_app(s), host=host, port=port, log_config=None,
                log_level=s.logging.level.lower(), access_log=False,
                server_header=False, date_header=False, proxy_headers=False)
    return 0


def add_staff_commands(sub: Any) -> None:
    st = sub.add_parser("staff", help="staff accounts of the web page").add_subparsers(
        dest="what", required=True)
    a = st.add_parser("add", help="create an account (asks for the password twice)")
    a.add_argument("staff_id", metavar="ID", help="the staff id to log in with, e.g. S03")
    a.add_argument("--branch", help="the staff member's branch: its lists come first")
    a.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    a.set_defaults(fn=cmd_staff_add)
    p = st.add_parser("passwd", help="set a new password for an account")
    p.add_argument("staff_id", metavar="ID", help="the staff id, e.g. S03")
    p.add_argument("--branch", help="change the staff member's branch as well")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.set_defaults(fn=cmd_staff_passwd)
    r = st.add_parser("remove", help="delete an account; its sessions end at once")
    r.add_argument("staff_id", metavar="ID", help="the staff id, e.g. S03")
    r.set_defaults(fn=cmd_staff_remove)
    lo = st.add_parser("logout-all", help="end every session of an account at once "
                                          "(a lost or shared login)")
    lo.add_argument("staff_id", metavar="ID", help="the staff id whose sessions end")
    lo.set_defaults(fn=cmd_staff_logout_all)
    ls = st.add_parser("list", help="the accounts, with how many sessions each has open")
    ls.set_defaults(fn=cmd_staff_list)
    lg = st.add_parser("log", help="every account change: created, password set, removed, and by whom")
    lg.add_argument("--json", action="store_true", help="one JSON object per line")
    lg.set_defaults(fn=cmd_staff_log)
    w = sub.add_parser("staff-web", help="serve the staff web page ([web] host and port)")
    w.add_argument("--host", help="bind address (default [web] host, 127.0.0.1)")
    w.add_argument("--port", type=int, help="port (default [web] port)")
    w.set_defaults(fn=cmd_staff_web)
