"""``omitama-notify review …``: the staff commands, over the same functions the web page uses.

``--json`` prints one JSON object per line (a contract: see DESIGN.md); without it,
one readable line per row.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from ..app import calls, registration, sender_problems, suspension
from ..app.call_groups import CallGroup, group_calls, grouped_rows
from ..contact.codes import clean_code
from ..errors import NotifyError
from ..settings import Settings
from ..store.core import Store
from .common import with_store


def _emit(rows: list[dict[str, Any]], as_json: bool, fields: list[str], out: TextIO) -> None:
    if as_json:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    if not rows:
        out.write("(none)\n")
    for row in rows:
        # an empty field (a refused event's unknown last day, say) shows as "-", not a gap
        out.write("  ".join(str(row[f]) if row.get(f) not in (None, "") else "-"
                            for f in fields) + "\n")


def print_groups(groups: list[CallGroup], out: TextIO) -> None:
    """The call list, one entry per patron per pickup branch. An entry of one hold is the
    line it always was (plus name and number); one of several holds is a heading line
    and one indented line per hold."""
    if not groups:
        out.write("(none)\n")
    for g in groups:
        who = "  ".join(x for x in (g.patron_name, f"tel {g.patron_phone}" if g.patron_phone
                                    else "") if x)
        if len(g.holds) == 1:
            h = g.holds[0]
            line = "  ".join(str(h.get(f)) if h.get(f) not in (None, "") else "-" for f in
                             ("pickup_by", "pickup_branch", "hold_id", "card_number",
                              "reason_ja", "title"))
            out.write(line + (f"  {who}" if who else "") + "\n")
            continue
        out.write("  ".join([g.pickup_by or "-", g.pickup_branch or "-", g.card_number or "-",
                             f"{len(g.holds)}点"] + ([who] if who else [])) + "\n")
        for h in g.holds:
            out.write("    " + "  ".join(str(h.get(f)) if h.get(f) not in (None, "") else "-"
                                        for f in ("hold_id", "pickup_by", "reason_ja", "title"))
                      + "\n")
        out.write(f"    (all at once: review called {' '.join(g.hold_ids)} --staff ID)\n")


# -- review ---------------------------------------------------------------------

def cmd_calls(args: argparse.Namespace, s: Settings) -> int:
    _check_branch(args.branch, s)

    async def run(store: Store) -> int:
        rows = await calls.calls_view(store, args.branch)
        if args.json:  # one object per hold, as before, plus its entry's `group`
            _emit(grouped_rows(rows), True, [], sys.stdout)
        else:
            print_groups(group_calls(rows), sys.stdout)
        return 0
    return with_store(s, run)


def cmd_called(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        if len(args.hold_id) == 1:
            await calls.mark_called(store, args.hold_id[0], args.staff, args.note)
            print(f"hold {args.hold_id[0]}: marked called by {args.staff}")
            return 0
        done, gone = await calls.mark_entry_called(store, args.hold_id, args.staff, args.note)
        for e in done:
            print(f"hold {e['hold_id']}: marked called by {args.staff}")
        for hold_id in gone:
            print(f"hold {hold_id}: not on the phone-call list (already called, cancelled, "
                  "picked up, or never listed)", file=sys.stderr)
        return 0
    return with_store(s, run)


def cmd_uncall(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        await calls.uncall(store, args.hold_id, args.staff, args.note)
        print(f"hold {args.hold_id}: back on the phone-call list (undone by {args.staff})")
        return 0
    return with_store(s, run)


def cmd_rejected(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        rows = await store.rejected()
        _emit(rows, args.json, ["received_at", "event_id", "type", "kind", "error"], sys.stdout)
        return 0
    return with_store(s, run)


def cmd_history(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        rows = await store.history(args.card)
        _emit(rows, args.json, ["at", "what", "staff", "why", "branch"], sys.stdout)
        return 0
    return with_store(s, run)


def cmd_pending(args: argparse.Namespace, s: Settings) -> int:
    _check_branch(args.branch, s)

    async def run(store: Store) -> int:
        rows = await registration.pending_view(store, s, args.branch)
        if args.json:
            _emit(rows, True, [], sys.stdout)
            return 0
        if not rows:
            print("(none)")
        for r in rows:
            print(f"{r['registered_at']}  {r['application_branch']}  card {r['card_number']}  "
                  f"{r['email']}  [{r['carrier_label']}]  confirmation: {r['confirmation']}, "
                  f"code: {r['code']}")
            if r["typo_suggestion"]:
                print(f"    ! typo? did you mean {r['typo_suggestion']}")
            if r["shared_with"]:
                print(f"    also on card(s): {', '.join(r['shared_with'])}")
            print(f"    read on the call: {r['read_on_call']}")
        return 0
    return with_store(s, run)


def cmd_approve(args: argparse.Namespace, s: Settings) -> int:
    if args.code is None and not args.without_code:
        raise NotifyError("give --code NNNNNN (read out by the patron) or --without-code --reason TEXT")
    if args.code is not None and args.without_code:
        raise NotifyError("give either --code or --without-code, not both")
    if args.without_code and not (args.reason or "").strip():
        raise NotifyError("--without-code needs --reason TEXT (it is kept in the audit log)")
    try:
        code = clean_code(args.code) if args.code is not None else None
    except ValueError as e:
        raise NotifyError(str(e)) from None

    async def run(store: Store) -> int:
        shown = args.address or await registration.pending_now(store, args.card)
        if shown is None:
            raise NotifyError(f"card {args.card}: no registration is waiting for approval")
        before = await registration.approve(store, s, args.card, args.staff, code=code,
                                            reason=args.reason, shown=shown)
        print(f"card {args.card}: {before.get('pending_address')} approved by {args.staff}; "
              "hold notices now go by e-mail")
        return 0
    return with_store(s, run)


def cmd_reject(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        shown = args.address or await registration.pending_now(store, args.card)
        before = await registration.reject(store, args.card, args.staff, args.reason,
                                           shown=shown)
        print(f"card {args.card}: registration of {before.get('pending_address')} rejected; "
              f"back to {before.get('prev_state') or 'none'}")
        return 0
    return with_store(s, run)


def cmd_failures(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        rows = await suspension.failures_view(store)
        if args.json:
            for r in rows:
                print(json.dumps({k: r.get(k) for k in suspension.FAILURE_FIELDS},
                                 ensure_ascii=False))
            return 0
        alert = await sender_problems.current(store)
        if alert:  # once, above the patrons' failures: nothing there is theirs to fix
            print(sender_problem_text(alert))
        rows = [r for r in rows if not r["sender_problem"]]
        if not rows:
            print("(none)")
        for r in rows:
            print(f"{r['at']}  card {r['card_number'] or '-'}  hold {r['hold_id'] or '-'}  "
                  f"{r['reason']} ({r['reason_ja']}){'  [受信設定]' if r['misconfigured_recipient'] else ''}"
                  f"{'' if r['verified'] else '  [未確認 unverified]'}")
            if not r["verified"]:
                print(f"    {r['evidence']}")
            print(f"    {r['diagnostic']}")
            print(f"    伝えること: {r['advice']}")
        return 0
    return with_store(s, run)


def sender_problem_text(alert: dict[str, Any]) -> str:
    """The open sender-problem alert in a few lines (``review failures``, ``check``)."""
    return (f"SENDER PROBLEM (ours, not the patrons'): {alert['count']} failure(s) since "
            f"{alert['first_at']}, {alert['patrons']} patron(s) affected; last {alert['at']}: "
            f"{alert['reason']} {alert.get('diagnostic') or ''}\n"
            f"    DNS管理者に依頼すること: {alert['advice']}\n"
            "    (close it with `omitama-notify review sender-fixed --staff ID` once fixed)")


def cmd_sender_fixed(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        closed = await sender_problems.close(store, args.staff)
        print(f"sender-problem alert closed by {args.staff} ({closed['count']} failure(s) "
              f"since {closed['first_at']}, {closed['patrons']} patron(s))")
        return 0
    return with_store(s, run)


def cmd_reenable(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        await suspension.reenable(store, args.card, args.staff, args.reason)
        print(f"card {args.card}: address re-enabled by {args.staff}")
        return 0
    return with_store(s, run)


def cmd_remove(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        await suspension.remove_address(store, args.card, args.staff, args.reason)
        print(f"card {args.card}: address removed by {args.staff}; notices go by phone")
        return 0
    return with_store(s, run)


def _check_branch(branch: str | None, s: Settings) -> None:
    if branch and branch not in s.branches:
        raise NotifyError(f"unknown branch {branch!r}; expected one of {', '.join(s.branches)}")


def _staff(value: str) -> str:
    if not value.strip() or len(value) > 64 or any(ord(c) < 32 for c in value):
        raise argparse.ArgumentTypeError("staff id must be 1–64 printable characters")
    return value.strip()


def _reason(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("a reason cannot be empty")
    return value.strip()


# help texts several commands share
JSON_HELP = "print one JSON object per line (for scripts) instead of readable lines"
STAFF_HELP = "your staff id, kept in the patron's audit log"
CARD_HELP = "the patron's card number"
ADDRESS_HELP = ("the pending address as 'review pending' shows it (or the registration id of "
                "'review pending --json'): if the patron has registered another since, "
                "nothing is changed")


def add_review_commands(sub: Any) -> None:
    r = sub.add_parser("review", help="staff review: registrations, call list, failures").add_subparsers(
        dest="what", required=True)
    p = r.add_parser("pending", help="registrations awaiting the patron's call, oldest first")
    p.add_argument("--branch", help="only registrations filed at this branch (its code, e.g. ogawa)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(fn=cmd_pending)
    a = r.add_parser("approve", help="approve a pending address after the patron's call")
    a.add_argument("card", help=CARD_HELP)
    a.add_argument("--staff", required=True, type=_staff, help=STAFF_HELP)
    a.add_argument("--code", help="the six-digit code the patron reads out")
    a.add_argument("--without-code", action="store_true",
                   help="approve without the code (needs --reason, e.g. identity checked at the counter)")
    a.add_argument("--reason", type=_reason, help="why, when approving without the code")
    a.add_argument("--address", type=_reason, help=ADDRESS_HELP + "; without it, the registration pending now")
    a.set_defaults(fn=cmd_approve)
    j = r.add_parser("reject", help="reject a pending address")
    j.add_argument("card", help=CARD_HELP)
    j.add_argument("--staff", required=True, type=_staff, help=STAFF_HELP)
    j.add_argument("--reason", required=True, type=_reason, help="why, for the audit log")
    j.add_argument("--address", type=_reason,
                   help=ADDRESS_HELP + "; without it, the registration pending now")
    j.set_defaults(fn=cmd_reject)
    f = r.add_parser("failures", help="delivery failures with advice for the patron")
    f.add_argument("--json", action="store_true", help=JSON_HELP)
    f.set_defaults(fn=cmd_failures)
    x = r.add_parser("sender-fixed", help="close the sender-problem alert (DNS fixed)")
    x.add_argument("--staff", required=True, type=_staff,
                   help="your staff id, kept with the alert's closing")
    x.set_defaults(fn=cmd_sender_fixed)
    e = r.add_parser("reenable", help="re-enable a suspended address")
    e.add_argument("card", help=CARD_HELP)
    e.add_argument("--staff", required=True, type=_staff, help=STAFF_HELP)
    e.add_argument("--reason", required=True, type=_reason,
                   help="why, for the audit log (e.g. the patron allowed our address)")
    e.set_defaults(fn=cmd_reenable)
    m = r.add_parser("remove", help="remove a patron's address (notices go by phone)")
    m.add_argument("card", help=CARD_HELP)
    m.add_argument("--staff", required=True, type=_staff, help=STAFF_HELP)
    m.add_argument("--reason", required=True, type=_reason, help="why, for the audit log")
    m.set_defaults(fn=cmd_remove)
    c = r.add_parser("calls", help="the phone-call list, by pickup deadline")
    c.add_argument("--branch", help="only holds to be picked up at this branch (its code, e.g. ogawa)")
    c.add_argument("--json", action="store_true", help=JSON_HELP)
    c.set_defaults(fn=cmd_calls)
    d = r.add_parser("called", help="mark a hold (or every hold of an entry) as phoned")
    d.add_argument("hold_id", nargs="+",
                   help="the hold id, as the call list shows it; several: one call told "
                        "the patron about all of them (an entry of the list)")
    d.add_argument("--staff", required=True, type=_staff, help=STAFF_HELP)
    d.add_argument("--note", default="", help="what was agreed on the phone (optional)")
    d.set_defaults(fn=cmd_called)
    u = r.add_parser("uncall", help="undo 'called': put a hold back on the phone-call list")
    u.add_argument("hold_id", help="the hold marked as phoned by mistake")
    u.add_argument("--staff", required=True, type=_staff, help="who undoes it (audit log)")
    u.add_argument("--note", default="", help="why, for the patron's audit log")
    u.set_defaults(fn=cmd_uncall)
    x = r.add_parser("rejected", help="events refused by validation, with the reason, oldest first")
    x.add_argument("--json", action="store_true", help=JSON_HELP)
    x.set_defaults(fn=cmd_rejected)
    h = r.add_parser("history", help="a patron's audit log")
    h.add_argument("card", help=CARD_HELP)
    h.add_argument("--json", action="store_true", help=JSON_HELP)
    h.set_defaults(fn=cmd_history)
