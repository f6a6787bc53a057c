"""Charts drawn on the server as inline SVG: no script, no image from elsewhere (the
staff page's CSP allows neither). Colours are presentation attributes (not styles, which
the CSP confines to the stylesheet); the lines also differ by dash, for print and for
colour-blind readers. Each chart is followed on the page by a table of its numbers.

The drawing is 400 units wide and scales with the page (``viewBox``): at a 390 px phone
it is drawn at about 0.9, its 11-unit text about 10 px; the stylesheet caps it at 720 px.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from markupsafe import Markup, escape

W, H = 400, 230
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 34, 24
FONT = 11


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    values: Sequence[float | None]
    dash: str = ""


def _nice_max(peak: float, whole: bool = True) -> float:
    """The top of the axis: four ticks of a round step (1, 2, 2.5 or 5 × 10ⁿ) that
    reach ``peak``; whole numbers for counts."""
    if peak <= 0:
        return 4 if whole else 0.04
    scale = 10.0 ** -6
    while True:
        for m in (1, 2, 2.5, 5):
            step = m * scale
            if (not whole or step >= 1 and float(step).is_integer()) and 4 * step >= peak:
                return 4 * step
        scale *= 10


def _ticks(top: float) -> list[float]:
    return [top * i / 4 for i in range(5)]


def _fmt(v: float, percent: bool) -> str:
    if percent:
        return f"{v * 100:.0f}%" if round(v * 100, 6).is_integer() else f"{v * 100:.1f}%"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def _frame(title: str, labels: Sequence[str], top: float, percent: bool,
           legend: Sequence[Series]) -> list[str]:
    plot_h = H - TOP - BOTTOM
    out = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" '
           f'xmlns="http://www.w3.org/2000/svg" font-size="{FONT}" '
           f'font-family="sans-serif"><title>{escape(title)}</title>']
    x = LEFT
    for s in legend:  # the legend on one row over the plot
        out.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{s.colour}"/>'
                   f'<text x="{x + 16}" y="16" fill="#1d2733">{escape(s.name)}</text>')
        x += 16 + FONT * len(s.name) + 14
    for t in _ticks(top):
        y = TOP + plot_h - plot_h * (t / top)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#d5dde5" stroke-width="0.6"/>'
                   f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#4a5866">'
                   f'{_fmt(t, percent)}</text>')
    n = max(len(labels), 1)
    every = max(1, -(-n // 8))  # at most 8 labels under the axis
    step = (W - LEFT - RIGHT) / n
    for i, label in enumerate(labels):
        if i % every == 0 or i == n - 1 and n <= 12:
            out.append(f'<text x="{LEFT + step * (i + 0.5):.1f}" y="{H - 8}" '
                       f'text-anchor="middle" fill="#4a5866">{escape(label)}</text>')
    return out


def stacked_bars(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """One bar per label, the series stacked bottom-up in the order given."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    out = _frame(title, labels, top, False, series)
    plot_h = H - TOP - BOTTOM
    step = (W - LEFT - RIGHT) / max(len(labels), 1)
    width = max(step * 0.7, 1)
    for i in range(len(labels)):
        y: float = TOP + plot_h
        for s in series:
            v = s.values[i] or 0
            if v <= 0:
                continue
            h = plot_h * v / top
            y -= h
            out.append(f'<rect x="{LEFT + step * i + (step - width) / 2:.1f}" y="{y:.1f}" '
                       f'width="{width:.1f}" height="{h:.1f}" fill="{s.colour}">'
                       f'<title>{escape(labels[i])} {escape(s.name)} {v:.0f}</title></rect>')
    out.append("</svg>")
    return Markup("".join(out))


def lines(title: str, labels: Sequence[str], series: Sequence[Series],
          percent: bool = True) -> Markup:
    """One line per series; a missing value (None: nothing to divide) breaks the line."""
    peak = max((v for s in series for v in s.values if v is not None), default=0)
    top = _nice_max(peak, whole=not percent)
    out = _frame(title, labels, top, percent, series)
    plot_h = H - TOP - BOTTOM
    step = (W - LEFT - RIGHT) / max(len(labels), 1)
    for s in series:
        run: list[str] = []
        points = []
        for i, v in enumerate(list(s.values) + [None]):
            if v is None:
                if len(run) > 1:
                    out.append(f'<polyline points="{" ".join(run)}" fill="none" '
                               f'stroke="{s.colour}" stroke-width="2"'
                               + (f' stroke-dasharray="{s.dash}"' if s.dash else "") + "/>")
                run = []
                continue
            xy = f"{LEFT + step * (i + 0.5):.1f},{TOP + plot_h - plot_h * v / top:.1f}"
            run.append(xy)
            points.append((xy, v, labels[i]))
        for xy, v, label in points:
            x, y = xy.split(",")
            out.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{s.colour}">'
                       f'<title>{escape(label)} {escape(s.name)} {_fmt(v, percent)}</title></circle>')
    out.append("</svg>")
    return Markup("".join(out))
