"""SVG bar charts of a benchmark run: one per workload, every server side by side.

Drawn from the run's JSON (no plotting library): for each scenario a
horizontal bar per competitor at the median of the scenario's primary metric,
with a whisker from the slowest to the fastest round (min-max).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from . import report

WIDTH = 840
LABEL_W = 230
VALUE_W = 210
ROW_H = 26
BAR_H = 16
TOP = 48
BOTTOM = 40
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"

#: Bar colours by family; ours stand out.
COLOURS = {
    "ours": "#2a6fdb",
    "websockets": "#e07b00",
    "ws4py": "#7a7a7a",
    "gevent-websocket": "#3d9970",
    "raw": "#b0b0b0",
}
UNPINNED_COLOUR = "#8fb4ee"


def nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1 to 10 in a few steps, times a power of ten)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power: float = 10.0 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def ticks(top: float, count: int = 5) -> list[float]:
    return [top * i / count for i in range(count + 1)]


def tick_label(value: float) -> str:
    """Axis labels without needless decimals: 0, 60, 1,500, 0.25."""
    if value == int(value):
        return f"{value:,.0f}"
    return report.num(value)


def chart(data: dict[str, Any], key: str) -> str | None:
    """The SVG of scenario ``key``, or ``None`` when no competitor has a number for it."""
    scenario = data["scenarios"][key]
    metric = report.primary(scenario["mode"], scenario["size"])
    rows: list[tuple[dict[str, Any], tuple[float, float, float, int] | None]] = []
    for comp in data["competitors"]:
        if not report.takes_part(comp, scenario):
            continue
        runs = data["results"].get(key, {}).get(comp["name"], [])
        rows.append((comp, report.summary(runs, metric.key)))
    if all(stats is None for _, stats in rows):
        return None
    top = nice_max(max(stats[2] for _, stats in rows if stats is not None))
    plot_w = WIDTH - LABEL_W - VALUE_W
    height = TOP + ROW_H * len(rows) + BOTTOM

    def x(value: float) -> float:
        return LABEL_W + plot_w * max(0.0, value) / top

    better = "higher is better" if metric.higher_better else "lower is better"
    title = f"{scenario['title']} — {metric.label} ({better})"
    aria = escape(title, {"'": "&apos;"})
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' "
        f"viewBox='0 0 {WIDTH} {height}' role='img' aria-label='{aria}'>",
        f"<rect width='{WIDTH}' height='{height}' fill='#ffffff'/>",
        f"<text x='{WIDTH / 2:.0f}' y='20' text-anchor='middle' font-size='14' font-weight='bold' {FONT}>"
        f"{escape(title)}</text>",
        f"<text x='{WIDTH / 2:.0f}' y='36' text-anchor='middle' font-size='11' fill='#555' {FONT}>"
        f"median of {data['settings']['rounds']} round(s); whiskers: min-max</text>",
    ]
    axis_y = TOP + ROW_H * len(rows)
    for tick in ticks(top):
        tx = x(tick)
        out.append(f"<line x1='{tx:.1f}' y1='{TOP - 4}' x2='{tx:.1f}' y2='{axis_y}' stroke='#e4e4e4'/>")
        out.append(
            f"<text x='{tx:.1f}' y='{axis_y + 14}' text-anchor='middle' font-size='10' fill='#555' {FONT}>"
            f"{escape(tick_label(tick))}</text>"
        )
    out.append(
        f"<text x='{LABEL_W + plot_w / 2:.0f}' y='{axis_y + 30}' text-anchor='middle' font-size='11' {FONT}>"
        f"{escape(metric.label)}</text>"
    )
    for i, (comp, stats) in enumerate(rows):
        y = TOP + ROW_H * i
        mid = y + ROW_H / 2
        out.append(
            f"<text x='{LABEL_W - 8}' y='{mid + 4:.1f}' text-anchor='end' font-size='12' {FONT}>"
            f"{escape(comp['name'])}</text>"
        )
        if stats is None:
            out.append(f"<text x='{LABEL_W + 4}' y='{mid + 4:.1f}' font-size='11' fill='#b00' {FONT}>no result</text>")
            continue
        median, low, high, _ = stats
        colour = COLOURS.get(comp["family"], "#999999")
        if comp["family"] == "ours" and comp.get("pinned") is False and data.get("pinning", {}).get("pinned"):
            colour = UNPINNED_COLOUR
        bar_y = mid - BAR_H / 2
        out.append(
            f"<rect x='{LABEL_W}' y='{bar_y:.1f}' width='{x(median) - LABEL_W:.1f}' height='{BAR_H}' fill='{colour}'>"
            f"<title>{escape(comp['name'])}: {escape(report.num(median))} {escape(metric.label)} "
            f"[{escape(report.num(low))}-{escape(report.num(high))}]</title></rect>"
        )
        if high > low:
            x0, x1 = x(low), x(high)
            out += [
                f"<line x1='{x0:.1f}' y1='{mid:.1f}' x2='{x1:.1f}' y2='{mid:.1f}' stroke='#222' stroke-width='1.2'/>",
                f"<line x1='{x0:.1f}' y1='{mid - 5:.1f}' x2='{x0:.1f}' y2='{mid + 5:.1f}' stroke='#222'/>",
                f"<line x1='{x1:.1f}' y1='{mid - 5:.1f}' x2='{x1:.1f}' y2='{mid + 5:.1f}' stroke='#222'/>",
            ]
        label = report.num(median) if high <= low else f"{report.num(median)} [{report.num(low)}-{report.num(high)}]"
        out.append(
            f"<text x='{x(max(high, median)) + 6:.1f}' y='{mid + 4:.1f}' font-size='11' {FONT}>{escape(label)}</text>"
        )
    out.append(f"<line x1='{LABEL_W}' y1='{TOP - 4}' x2='{LABEL_W}' y2='{axis_y}' stroke='#444'/>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_all(data: dict[str, Any], directory: Path) -> dict[str, Path]:
    """One ``<scenario>.svg`` per scenario with numbers into ``directory``; scenario -> file."""
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for key in data["scenarios"]:
        svg = chart(data, key)
        if svg is None:
            continue
        path = directory / f"{key}.svg"
        path.write_text(svg, encoding="utf-8")
        written[key] = path
    return written
