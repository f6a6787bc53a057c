"""「統計」: the last 30 days and 12 months per branch (or all), the carriers' failure
rates, registrations waiting by age; a month's figures as CSV (worker/app/stats.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ...app import stats as stats_mod
from ...errors import InputError
from ...stats.fields import CARRIER_BUCKETS, CARRIER_LABELS, WAIT_BUCKETS, WAIT_LABELS
from ...stats.report import Period, Tally, summary, total
from ..base import chosen_branch, render, settings, store
from ..charts import Series, lines, stacked_bars

MAIL, PHONE, FAILED = "#0072B2", "#E69F00", "#D55E00"
CARRIER_LOOK = {"docomo": ("#CC79A7", ""), "au": ("#E69F00", "6 3"),
                "softbank": ("#009E73", "2 2"), "other": ("#56667a", "8 3 2 3")}


def _how(tallies: list[Tally], labels: list[str], title: str,
         row_labels: list[str] | None = None) -> dict[str, object]:
    """A mail / phone / failed chart with its table rows (labelled ``row_labels``)."""
    mail = [t.get("mail") for t in tallies]
    phone = [t.get("phone") for t in tallies]
    failed = [t.get("failed") for t in tallies]
    chart = stacked_bars(title, labels, [Series("メール", MAIL, mail),
                                         Series("電話", PHONE, phone),
                                         Series("不達", FAILED, failed)])
    return {"chart": chart, "rows": list(zip(row_labels or labels, mail, phone, failed))}


async def page(request: Request) -> Response:
    only = chosen_branch(request)
    ov = await stats_mod.overview(store(request))
    days = [total(ov.counts, p, only) for p in ov.days]
    months = [total(ov.counts, p, only) for p in ov.months]
    month_labels = [f"{p.first.month}月" for p in ov.months]
    rates = [Series(CARRIER_LABELS[c], CARRIER_LOOK[c][0], [t.failure_rate(c) for t in months],
                    CARRIER_LOOK[c][1]) for c in CARRIER_BUCKETS]
    carrier_rows = [(p.label, [(t.get(f"bounced_{c}"),
                                t.get(f"mailed_{c}") + t.get(f"sendfail_{c}"),
                                t.failure_rate(c)) for c in CARRIER_BUCKETS])
                    for p, t in zip(ov.months, months)]
    codes = [only] if only else list(settings(request).branches)
    ages = {b: ov.pending.get(b, {}) for b in codes}
    for b in (set(ov.pending) - set(codes) if not only else set()):
        ages[b] = ov.pending[b]
    waiting = [sum(a.get(name, 0) for a in ages.values()) for _, name in WAIT_BUCKETS]
    scope_30 = _span(ov.days[0], ov.days[-1])
    scope_12 = _span(ov.months[0], ov.months[-1])
    return render(
        request, "stats.html", only=only, now=ov.now,
        recent=_how(days, [p.label for p in ov.days], f"この30日 {scope_30}: 連絡の方法(予約数)"),
        yearly=_how(months, month_labels, f"この12か月 {scope_12}: 連絡の方法(予約数)",
                    [f"{p.first.year}年{p.first.month}月" for p in ov.months]),
        rate_chart=lines("携帯会社別の不達率(月ごと)", month_labels, rates),
        carrier_rows=carrier_rows, carriers=[CARRIER_LABELS[c] for c in CARRIER_BUCKETS],
        ages=ages, age_buckets=[(name, WAIT_LABELS[name]) for _, name in WAIT_BUCKETS],
        age_chart=stacked_bars("承認待ちの登録(登録からの日数)",
                               [WAIT_LABELS[n] for _, n in WAIT_BUCKETS],
                               [Series("承認待ち", MAIL, waiting)]),
        summary=summary([_sum(days), _sum(months)]), scope_30=scope_30, scope_12=scope_12,
        waits=[(WAIT_LABELS[n], _sum(days).get(f"wait_{n}"), _sum(months).get(f"wait_{n}"))
               for _, n in WAIT_BUCKETS],
        csv_months=[p.label for p in reversed(ov.months)])


def _sum(tallies: list[Tally]) -> Tally:
    t = Tally()
    for x in tallies:
        t.merge(x)
    return t


def _span(first: Period, last: Period) -> str:
    return f"{first.first.year}年{first.first.month}月{first.first.day}日〜{last.last.month}月{last.last.day}日"


async def csv(request: Request) -> Response:
    try:
        month = stats_mod.month_period(request.query_params.get("month") or "")
    except InputError:
        return render(request, "error.html", status_code=400, title="月の指定が正しくありません",
                      message="月は 2026-12 のように「年-月」で指定してください。"
                              "統計のページのリンクからダウンロードできます。")
    text = await stats_mod.month_csv(store(request), settings(request), month)
    name = f"omitama-stats-{month.label}.csv"
    return Response(text.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"'})
