"""The statistics shaped for people: rows per day and branch, sums per period, the CSV
(pure). The same rows feed the 「統計」 page, its CSV download and ``omitama-notify stats``,
so the three cannot disagree.

What the head librarian's questions read from a row:

- 「メールで」 ``mail``: holds whose notice was handed to the relay (single or digest);
- 「電話で」 ``phone``: holds put on the call list for any reason but a failed mail
  (the patron chose phone, no approved address, …);
- 「不達」 ``failed``: holds put on the call list because their mail failed (refused,
  bounced later, retries ran out). A notice that bounced after it went out counts in
  ``mail`` on the day it was sent and in ``failed`` on the day it bounced;
- the failure rate of a carrier: its bounces ÷ (its mails + its refusals at send time).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterable, Mapping

from ..contact.state import CALL_REASON_JA, CallReason
from .fields import CARRIER_BUCKETS, CARRIER_LABELS, WAIT_BUCKETS, WAIT_LABELS, split, wait_bucket

FAILED_REASONS = (CallReason.BOUNCED.value, CallReason.DELIVERY_FAILED.value)

#: (column, heading) of a row, in the CSV's order (after date and branch).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("mail", "メールで連絡"), ("phone", "電話連絡へ"), ("failed", "メール不達"),
    ("mailed_single", "メール(1通1点)"), ("mailed_digest", "メール(まとめ)"),
    *((f"listed_{r.value}", f"電話連絡へ:{CALL_REASON_JA.get(r, r.value)}") for r in CallReason),
    *((f"mailed_{c}", f"メール:{CARRIER_LABELS[c]}") for c in CARRIER_BUCKETS),
    *((f"bounced_{c}", f"不達:{CARRIER_LABELS[c]}") for c in CARRIER_BUCKETS),
    ("sendfail", "送信時に拒否"), ("bounce_reasons", "不達の理由"),
    ("reminded", "受取期限前のお知らせ"), ("called", "電話連絡済み"),
    ("registered", "メール登録"), ("approved_code", "承認(確認番号)"),
    ("approved_without_code", "承認(番号なし)"), ("rejected", "登録取消"),
    ("wait_n", "承認までの日数:件数"), ("wait_sum_s", "承認までの秒数:合計"),
    *((f"wait_{b}", f"承認まで:{WAIT_LABELS[b]}") for _, b in WAIT_BUCKETS),
)
NUMBER_COLUMNS = tuple(c for c, _ in COLUMNS if c != "bounce_reasons")


@dataclass
class Tally:
    """The counts of one branch (or all) over one day or a period."""

    n: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)   # bounce reason → count

    def add(self, metric: str, count: int) -> None:
        parts = metric.split(".")
        keys: list[str] = []
        if parts[0] == "mailed" and len(parts) == 3:
            keys = ["mail", f"mailed_{parts[1]}", f"mailed_{parts[2]}"]
        elif parts[0] == "listed" and len(parts) == 2:
            keys = [f"listed_{parts[1]}",
                    "failed" if parts[1] in FAILED_REASONS else "phone"]
        elif parts[0] == "bounced" and len(parts) == 3:
            keys = [f"bounced_{parts[2]}"]
            self.reasons[parts[1]] = self.reasons.get(parts[1], 0) + count
        elif parts[0] == "sendfail" and len(parts) == 2:
            keys = ["sendfail", f"sendfail_{parts[1]}"]
        elif parts[0] == "approved" and len(parts) == 2:
            keys = [f"approved_{parts[1]}"]
        elif parts[0] == "wait" and len(parts) == 2:
            keys = [f"wait_{parts[1]}"]
        elif len(parts) == 1:
            keys = [metric]
        for k in keys:
            self.n[k] = self.n.get(k, 0) + count

    def merge(self, other: "Tally") -> None:
        for k, v in other.n.items():
            self.n[k] = self.n.get(k, 0) + v
        for k, v in other.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v

    def get(self, column: str) -> int:
        return self.n.get(column, 0)

    def failure_rate(self, carrier: str) -> float | None:
        """Bounces ÷ mails tried at ``carrier``'s addresses; None with nothing tried."""
        tried = self.get(f"mailed_{carrier}") + self.get(f"sendfail_{carrier}")
        return self.get(f"bounced_{carrier}") / tried if tried else None

    def wait_avg_days(self) -> float | None:
        n = self.get("wait_n")
        return self.get("wait_sum_s") / n / 86400 if n else None

    def reasons_text(self) -> str:
        return "; ".join(f"{r}={n}" for r, n in sorted(self.reasons.items()))


def by_branch(counts: Mapping[str, int]) -> dict[str, Tally]:
    """One day's stored hash → a tally per branch."""
    out: dict[str, Tally] = {}
    for name, n in counts.items():
        branch, metric = split(name)
        out.setdefault(branch, Tally()).add(metric, n)
    return out


@dataclass(frozen=True)
class Period:
    label: str          # 12/5 or 2026-12
    first: date
    last: date


def total(days: Mapping[date, Mapping[str, int]], period: Period,
          branch: str | None) -> Tally:
    """The tally of ``branch`` (None: all branches) over the days of ``period``."""
    t = Tally()
    for d, counts in days.items():
        if period.first <= d <= period.last:
            for b, tally in by_branch(counts).items():
                if branch is None or b == branch:
                    t.merge(tally)
    return t


def day_rows(days: Mapping[date, Mapping[str, int]],
             branches: Iterable[str]) -> list[tuple[date, str, Tally]]:
    """(day, branch, tally) for every day and branch: the CSV's rows. Branches named
    in the counts but not in the settings (a branch closed since) come last."""
    order = list(branches)
    rows = []
    for d in sorted(days):
        tallies = by_branch(days[d])
        for b in order + sorted(set(tallies) - set(order)):
            rows.append((d, b, tallies.get(b, Tally())))
    return rows


def to_csv(rows: list[tuple[date, str, Tally]], names: Mapping[str, str]) -> str:
    """The rows as CSV text for Excel: UTF-8 with a BOM (Excel reads Japanese then),
    CRLF line ends, one row per day and branch."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["日付", "館コード", "館", *(h for _, h in COLUMNS)])
    for d, b, t in rows:
        w.writerow([d.isoformat(), b, names.get(b, b),
                    *(t.reasons_text() if c == "bounce_reasons" else t.get(c)
                      for c, _ in COLUMNS)])
    return "\ufeff" + out.getvalue()


def pending_ages(records: Iterable[Mapping[str, str]], now: datetime) -> dict[str, dict[str, int]]:
    """Registrations awaiting the patron's call, per application branch and age bucket."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        try:
            since = datetime.fromisoformat(r.get("pending_at") or "")
            age = (now - since).total_seconds() if since.tzinfo else 0.0
        except ValueError:
            age = 0.0
        bucket = wait_bucket(max(age, 0.0))
        per = out.setdefault(r.get("pending_branch") or "unknown", {})
        per[bucket] = per.get(bucket, 0) + 1
    return out


def _rate(t: Tally, carrier: str) -> str:
    r = t.failure_rate(carrier)
    return "-" if r is None else f"{r * 100:.1f}%"


def _avg(t: Tally) -> str:
    a = t.wait_avg_days()
    return "-" if a is None else f"{a:.1f}日"


#: The figures of a period, as the page's summary table and ``stats`` print them.
SUMMARY: tuple[tuple[str, object], ...] = (
    ("メールで連絡(予約数)", lambda t: str(t.get("mail"))),
    ("  うち1通1点", lambda t: str(t.get("mailed_single"))),
    ("  うちまとめメール", lambda t: str(t.get("mailed_digest"))),
    ("電話連絡へ(メール以外の理由)", lambda t: str(t.get("phone"))),
    ("メール不達で電話連絡へ", lambda t: str(t.get("failed"))),
    *((f"不達 {CARRIER_LABELS[c]}(率)",
       (lambda c: lambda t: f"{t.get(f'bounced_{c}')}({_rate(t, c)})")(c))
      for c in CARRIER_BUCKETS),
    ("受取期限前のお知らせ", lambda t: str(t.get("reminded"))),
    ("電話連絡済み", lambda t: str(t.get("called"))),
    ("メール登録", lambda t: str(t.get("registered"))),
    ("承認(確認番号あり)", lambda t: str(t.get("approved_code"))),
    ("承認(確認番号なし)", lambda t: str(t.get("approved_without_code"))),
    ("登録取消", lambda t: str(t.get("rejected"))),
    ("承認までの平均日数", _avg),
)


def summary(tallies: list[Tally]) -> list[tuple[str, list[str]]]:
    """(label, one value per tally) for each figure of :data:`SUMMARY`."""
    return [(label, [fn(t) for t in tallies]) for label, fn in SUMMARY]  # type: ignore[operator]
