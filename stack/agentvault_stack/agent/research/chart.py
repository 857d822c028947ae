"""The verification chart: a grouped bar chart written as SVG text (no plotting library).

One group of three bars per source (or per research question): how many findings it backs that are
corroborated, contested or single-source. Every label is XML-escaped, so the result always parses.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any
from xml.sax.saxutils import escape

LABELS = ("corroborated", "contested", "single-source")
COLOURS = {"corroborated": "#2e7d32", "contested": "#e65100", "single-source": "#9e9e9e"}

BAR = 18
GAP = 28
LEFT, RIGHT, TOP, BOTTOM = 56, 24, 78, 72
LABEL_LINES = 3
CHAR_WIDTH = 6.2  # average width of an 11px sans-serif character
PLOT_HEIGHT = 220


def _attr(value: Any) -> str:
    return escape(str(value), {'"': "&quot;"})


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in at most ``LABEL_LINES`` lines of ``width`` characters (the last one shortened)."""
    lines = textwrap.wrap(text, width) or [""]
    if len(lines) > LABEL_LINES:
        lines = lines[: LABEL_LINES - 1] + [_short(" ".join(lines[LABEL_LINES - 1 :]), width)]
    return [_short(line, width) for line in lines]


def chart_series(verification: dict[str, Any], group_by: str = "source") -> list[tuple[str, dict[str, int]]]:
    """``[(group name, {label: count})]`` in chart order (most findings first, then by name)."""
    if group_by == "question":
        rows = verification.get("by_question") or []
        series = [
            (f"Q{i}", {label: int(row.get(label, 0)) for label in LABELS}) for i, row in enumerate(rows, 1)
        ]
        return series
    by_source = verification.get("by_source") or {}
    series = [(name, {label: int(counts.get(label, 0)) for label in LABELS}) for name, counts in by_source.items()]
    return sorted(series, key=lambda item: (-sum(item[1].values()), item[0]))


def render_chart(verification: dict[str, Any], group_by: str = "source") -> tuple[str, dict[str, Any]]:
    """The SVG document and metadata about it (size, groups, totals)."""
    topic = verification.get("topic")
    series = chart_series(verification, group_by)
    groups = len(series)
    width = max(LEFT + RIGHT + groups * (3 * BAR + GAP), 480)
    group_width = (width - LEFT - RIGHT) / groups if groups else 0  # groups spread over the plot
    height = TOP + PLOT_HEIGHT + BOTTOM
    peak = max((max(counts.values()) for _, counts in series), default=0)
    step = max(1, math.ceil(peak / 5))
    top_value = max(step * math.ceil(peak / step), step) if peak else 1
    base_y = TOP + PLOT_HEIGHT

    def y_of(value: float) -> float:
        return base_y - PLOT_HEIGHT * value / top_value

    title = f"Verification of claims: {topic}" if topic else "Verification of claims"
    summary = verification.get("summary") or {}
    desc = (
        f"Findings per {'research question' if group_by == 'question' else 'source'}: "
        + ", ".join(f"{summary.get(label, 0)} {label}" for label in LABELS)
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title chart-desc" '
        'font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(desc)}</desc>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="26" font-size="16" font-weight="bold">{escape(_short(title, 70))}</text>',
    ]
    # legend
    x = LEFT
    for label in LABELS:
        out.append(f'<rect x="{x}" y="42" width="12" height="12" fill="{COLOURS[label]}"/>')
        out.append(f'<text x="{x + 17}" y="52">{escape(label)} ({int(summary.get(label, 0))})</text>')
        x += 150
    # axes and grid
    tick = 0
    while tick <= top_value:
        y = round(y_of(tick), 1)
        out.append(f'<line x1="{LEFT}" y1="{y}" x2="{width - RIGHT}" y2="{y}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + 4}" text-anchor="end">{tick}</text>')
        tick += step
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base_y}" stroke="#424242"/>')
    out.append(f'<line x1="{LEFT}" y1="{base_y}" x2="{width - RIGHT}" y2="{base_y}" stroke="#424242"/>')
    out.append(
        f'<text x="16" y="{TOP + PLOT_HEIGHT / 2}" transform="rotate(-90 16 {TOP + PLOT_HEIGHT / 2})" '
        'text-anchor="middle">findings</text>'
    )
    if not series:
        out.append(
            f'<text x="{width / 2}" y="{TOP + PLOT_HEIGHT / 2}" text-anchor="middle" fill="#757575">'
            "No findings to chart</text>"
        )
    for index, (name, counts) in enumerate(series):
        gx = LEFT + index * group_width + (group_width - 3 * BAR) / 2
        for offset, label in enumerate(LABELS):
            value = counts[label]
            y = round(y_of(value), 1)
            bar_height = round(base_y - y, 1)
            bx = gx + offset * BAR
            out.append(
                f'<rect x="{bx}" y="{y}" width="{BAR - 2}" height="{bar_height}" fill="{COLOURS[label]}">'
                f"<title>{escape(name)}: {value} {escape(label)}</title></rect>"
            )
            if value:
                out.append(
                    f'<text x="{bx + (BAR - 2) / 2}" y="{y - 4}" text-anchor="middle" font-size="10">{value}</text>'
                )
        lx = round(gx + 1.5 * BAR - 1, 1)
        lines = _wrap(name, max(int((group_width - 6) / CHAR_WIDTH), 6))
        spans = "".join(
            f'<tspan x="{lx}" dy="{0 if n == 0 else 13}">{escape(line)}</tspan>' for n, line in enumerate(lines)
        )
        out.append(f'<text x="{lx}" y="{base_y + 16}" text-anchor="middle" font-size="11">{spans}</text>')
    out.append("</svg>")
    meta = {
        "width": width,
        "height": height,
        "group_by": group_by,
        "groups": [name for name, _ in series],
        "totals": {label: int(summary.get(label, 0)) for label in LABELS},
    }
    return "\n".join(out) + "\n", meta
