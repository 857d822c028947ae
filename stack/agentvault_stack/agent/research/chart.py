"""The verification chart, drawn by matplotlib (Agg, no GUI): which sources support which findings.

One horizontal bar per source (or per research question), as long as the findings it supports, split
into corroborated, contested and single-source; a zero part is not drawn, so there are no empty slots.
Labels are whole: names are wrapped at spaces only (``textwrap``, never inside a word) and stand beside
their bars. Written as SVG (text kept as text, with a title and description for screen readers) and
as PNG; both are the same for the same verification, byte for byte.
"""

from __future__ import annotations

import io
import textwrap
import threading
from typing import Any
from xml.sax.saxutils import escape

import matplotlib

matplotlib.use("Agg")  # before anything draws: files only, never a window

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402 (after choosing the backend)
from matplotlib.figure import Figure  # noqa: E402

LABELS = ("corroborated", "contested", "single-source")
COLOURS = {"corroborated": "#2e7d32", "contested": "#e65100", "single-source": "#9e9e9e"}
#: Characters per label line: names wrap at spaces within this width.
LABEL_WIDTH = 30
DPI = 100
#: rcParams that make the output reproducible and the SVG's text searchable.
_RC = {"svg.hashsalt": "agentvault-research", "svg.fonttype": "none", "font.family": "DejaVu Sans"}
_SVG_METADATA = {"Date": None, "Creator": None}
_PNG_METADATA = {"Software": None}
_DRAWING = threading.Lock()  # rcParams are global: one chart at a time


def wrap_label(text: str, width: int = LABEL_WIDTH) -> list[str]:
    """``text`` in lines of about ``width`` characters, broken at spaces only (a longer word stays whole)."""
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def chart_series(verification: dict[str, Any], group_by: str = "source") -> list[tuple[str, dict[str, int]]]:
    """``[(group name, {label: count})]`` in chart order (most findings first, then by name); groups
    without findings are left out."""
    if group_by == "question":
        rows = verification.get("by_question") or []
        series = [
            (f"Q{i}: {row.get('question', '')}".rstrip(": "), {label: int(row.get(label, 0)) for label in LABELS})
            for i, row in enumerate(rows, 1)
        ]
        return [item for item in series if sum(item[1].values())]
    by_source = verification.get("by_source") or {}
    series = [(name, {label: int(counts.get(label, 0)) for label in LABELS}) for name, counts in by_source.items()]
    series = [item for item in series if sum(item[1].values())]
    return sorted(series, key=lambda item: (-sum(item[1].values()), item[0]))


def _draw(verification: dict[str, Any], series: list[tuple[str, dict[str, int]]], group_by: str) -> Figure:
    topic = verification.get("topic")
    summary = verification.get("summary") or {}
    prefix = shared_prefix([name for name, _ in series])
    wrapped = ["\n".join(wrap_label(name.removeprefix(prefix))) for name, _ in series]
    lines = sum(label.count("\n") + 1 for label in wrapped)
    height = 1.7 + 0.3 * max(lines, 2) + 0.2 * len(series)
    figure = Figure(figsize=(8.5, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    what = "research question" if group_by == "question" else "source"
    axes.set_title(f"Findings supported per {what}" + (f": {topic}" if topic else ""), loc="left", fontsize=12,
                   wrap=True)
    if not series:
        axes.text(0.5, 0.5, "No findings to chart", ha="center", va="center", color="#757575",
                  transform=axes.transAxes)
        axes.set_axis_off()
        return figure
    positions = list(range(len(series)))[::-1]  # the first group on top
    left = [0] * len(series)
    for label in LABELS:
        values = [counts[label] for _, counts in series]
        shown = [(y, x, v) for y, x, v in zip(positions, left, values, strict=True) if v]
        if shown:
            bars = axes.barh([y for y, _, _ in shown], [v for *_, v in shown], left=[x for _, x, _ in shown],
                             color=COLOURS[label], height=0.6,
                             label=f"{label} ({int(summary.get(label, sum(values)))})")
            axes.bar_label(bars, labels=[str(v) for *_, v in shown], label_type="center", color="white",
                           fontsize=9)
        left = [x + v for x, v in zip(left, values, strict=True)]
    axes.set_yticks(positions, wrapped, fontsize=9)
    axes.set_xlabel("findings supported")
    if prefix:  # "Wikipedia: " on every source: said once, on the axis
        axes.set_ylabel(f"{prefix.rstrip(': ')} articles")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_xlim(0, max(left) * 1.05 + 0.2)
    axes.spines[["top", "right"]].set_visible(False)
    figure.legend(loc="outside lower center", ncols=3, fontsize=9, frameon=False)
    return figure


def shared_prefix(names: list[str]) -> str:
    """``"Wikipedia: "`` when every name starts with it (an encyclopedia's articles), else ``""``."""
    heads = {name.partition(": ")[0] for name in names if ": " in name}
    if len(heads) == 1 and all(": " in name for name in names) and len(names) > 1:
        return f"{heads.pop()}: "
    return ""


def _svg_with_title(svg: str, title: str, desc: str) -> str:
    """The SVG with a ``<title>`` and ``<desc>`` first in its root element (what screen readers announce)."""
    start = svg.index("<svg")
    end = svg.index(">", start) + 1
    return f'{svg[:end]}\n <title>{escape(title)}</title>\n <desc>{escape(desc)}</desc>{svg[end:]}'


def render_charts(verification: dict[str, Any], group_by: str = "source") -> tuple[str, bytes, dict[str, Any]]:
    """The chart as SVG text and PNG bytes, and metadata about it (size, groups, label lines, totals)."""
    series = chart_series(verification, group_by)
    summary = verification.get("summary") or {}
    topic = verification.get("topic")
    with _DRAWING, matplotlib.rc_context(_RC):
        figure = _draw(verification, series, group_by)
        svg_buffer, png_buffer = io.StringIO(), io.BytesIO()
        figure.savefig(svg_buffer, format="svg", metadata=_SVG_METADATA)
        figure.savefig(png_buffer, format="png", metadata=_PNG_METADATA)
        width, height = (round(v) for v in figure.get_size_inches() * DPI)
        segments = sum(len(container) for axes in figure.axes for container in axes.containers)
    title = f"Verification of claims: {topic}" if topic else "Verification of claims"
    desc = (f"Findings supported per {'research question' if group_by == 'question' else 'source'}: "
            + ", ".join(f"{summary.get(label, 0)} {label}" for label in LABELS))
    meta_names = [name for name, _ in series]
    meta = {
        "width": width,
        "height": height,
        "group_by": group_by,
        "groups": [name for name, _ in series],
        "label_lines": [wrap_label(name.removeprefix(shared_prefix(meta_names))) for name in meta_names],
        "totals": {label: int(summary.get(label, 0)) for label in LABELS},
        "segments": segments,  # bar parts drawn: one per non-zero (group, label), never an empty one
    }
    return _svg_with_title(svg_buffer.getvalue(), title, desc), png_buffer.getvalue(), meta


def render_chart(verification: dict[str, Any], group_by: str = "source") -> tuple[str, dict[str, Any]]:
    """The SVG chart and its metadata (see :func:`render_charts`)."""
    svg, _, meta = render_charts(verification, group_by)
    return svg, meta
