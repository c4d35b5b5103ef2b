"""Charts as inline SVG, drawn here so a report page needs no script, font or URL."""

from __future__ import annotations

import math
from html import escape

from mvg_sync.reports.format import NBSP, format_number, format_percent, format_value
from mvg_sync.reports.model import Chart

# Okabe-Ito: tells series apart for colour-blind readers too.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

WIDTH = 760
FONT = "font-family=\"system-ui, sans-serif\" font-size=\"11\""


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _ticks(top: float, n: int = 5) -> list[float]:
    return [top * i / n for i in range(n + 1)]


def _tick_label(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.0f}{NBSP}%"
    return format_number(value)


def _legend(series: tuple[str, ...], x0: int, y: int) -> list[str]:
    out, x = [], x0
    for i, name in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="{y}" {FONT}>{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return out


def _values(chart: Chart) -> tuple[list[str], list[list[float]], int]:
    frame = chart.frame
    total = frame.height
    frame = frame.head(chart.max_categories)
    categories = [format_value(v) for v in frame[chart.x].to_list()]
    series = [[float(v or 0) for v in frame[s].to_list()] for s in chart.series]
    return categories, series, total


def render_chart(chart: Chart) -> str:
    """The chart as an `<svg>` element (with a `<title>` per mark for hover text)."""
    categories, series, total = _values(chart)
    if not categories:
        body = (f'<svg class="chart" role="img" aria-label="{escape(chart.title)}" '
                f'width="{WIDTH}" height="60" viewBox="0 0 {WIDTH} 60">'
                f'<text x="10" y="35" {FONT}>Inga data i perioden.</text></svg>')
        return body
    if chart.kind == "line":
        svg = _line(chart, categories, series)
    elif chart.horizontal:
        svg = _hbar(chart, categories, series)
    else:
        svg = _vbar(chart, categories, series)
    if total > len(categories):
        svg += (f'<p class="chart-note">Visar de första {len(categories)} av {total} '
                f'kategorierna.</p>')
    return svg


def _open(chart: Chart, height: int) -> str:
    return (f'<svg class="chart" role="img" aria-label="{escape(chart.title)}" width="{WIDTH}" '
            f'height="{height}" viewBox="0 0 {WIDTH} {height}">')


def _top(chart: Chart, series: list[list[float]]) -> float:
    if chart.stacked:
        peak = max((sum(col) for col in zip(*series, strict=True)), default=0.0)
    else:
        peak = max((max(s, default=0.0) for s in series), default=0.0)
    if chart.percent and peak <= 1:
        return 1.0
    # counts: at least 0..5 so five ticks fall on whole numbers
    return max(5.0, _nice_max(peak))


def _mark_title(chart: Chart, category: str, name: str, value: float) -> str:
    shown = format_percent(value) if chart.percent else format_number(value)
    return f"<title>{escape(category)} – {escape(name)}: {escape(shown)}</title>"


def _plot_area(
    chart: Chart, series: list[list[float]], *, height: int, bottom: int, left: int = 56, right: int = 16,
    top_pad: int = 30,
) -> tuple[list[str], float, float, float]:
    """The column and line charts' frame: svg head, legend, value grid with labels.

    Returns the parts so far, the value axis top, and the plot's width and height.
    """
    plot_w, plot_h = WIDTH - left - right, height - top_pad - bottom
    top = _top(chart, series)
    parts = [_open(chart, height), *_legend(chart.series, left, 14)]
    for t in _ticks(top):
        y = top_pad + plot_h - plot_h * t / top
        parts.append(f'<line x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>'
                     f'{_tick_label(t, chart.percent)}</text>')
    return parts, top, plot_w, plot_h


MAX_BAR_WIDTH = 56.0


def _vbar(chart: Chart, categories: list[str], series: list[list[float]]) -> str:
    left, right, top_pad = 56, 16, 30
    parts, top, plot_w, plot_h = _plot_area(chart, series, height=320, bottom=70)
    band = plot_w / len(categories)
    groups = 1 if chart.stacked else len(series)
    # A lone category would otherwise get one bar across the whole plot.
    bar_w = max(1.0, min(band * 0.8 / groups, MAX_BAR_WIDTH))
    for ci, category in enumerate(categories):
        x0 = left + ci * band + (band - bar_w * groups) / 2
        base = 0.0
        for si, values in enumerate(series):
            v = values[ci]
            h = plot_h * v / top
            if chart.stacked:
                x, y = x0, top_pad + plot_h - plot_h * base / top - h
                base += v
            else:
                x, y = x0 + si * bar_w, top_pad + plot_h - h
            parts.append(
                f'<rect class="mark" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[si % len(PALETTE)]}">'
                f'{_mark_title(chart, category, chart.series[si], v)}</rect>')
        cx = left + ci * band + band / 2
        label_y = top_pad + plot_h + 12
        parts.append(f'<text x="{cx:.1f}" y="{label_y}" text-anchor="end" {FONT} '
                     f'transform="rotate(-40 {cx:.1f} {label_y})">{escape(category[:24])}</text>')
    parts.append(f'<line x1="{left}" x2="{WIDTH - right}" y1="{top_pad + plot_h}" '
                 f'y2="{top_pad + plot_h}" stroke="#333"/>')
    if chart.value_label:
        parts.append(f'<text x="12" y="{top_pad + plot_h / 2:.0f}" {FONT} text-anchor="middle" '
                     f'transform="rotate(-90 12 {top_pad + plot_h / 2:.0f})">'
                     f'{escape(chart.value_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _hbar(chart: Chart, categories: list[str], series: list[list[float]]) -> str:
    row_h, left, right, top_pad = 18, 230, 40, 30
    height = top_pad + row_h * len(categories) + 30
    plot_w = WIDTH - left - right
    top = _top(chart, series)
    parts = [_open(chart, height)]
    parts += _legend(chart.series, left, 14)
    for t in _ticks(top):
        x = left + plot_w * t / top
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top_pad}" '
                     f'y2="{height - 24}" stroke="#ddd"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" {FONT}>'
                     f'{_tick_label(t, chart.percent)}</text>')
    groups = 1 if chart.stacked else len(series)
    bar_h = max(1.0, row_h * 0.8 / groups)
    for ci, category in enumerate(categories):
        y0 = top_pad + ci * row_h + row_h * 0.1
        base = 0.0
        for si, values in enumerate(series):
            v = values[ci]
            w = plot_w * v / top
            if chart.stacked:
                x, y = left + plot_w * base / top, y0
                base += v
            else:
                x, y = left, y0 + si * bar_h
            parts.append(
                f'<rect class="mark" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{bar_h:.1f}" '
                f'fill="{PALETTE[si % len(PALETTE)]}">'
                f'{_mark_title(chart, category, chart.series[si], v)}</rect>')
        parts.append(f'<text x="{left - 6}" y="{top_pad + ci * row_h + row_h * 0.7:.1f}" '
                     f'text-anchor="end" {FONT}>{escape(category[:36])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _line(chart: Chart, categories: list[str], series: list[list[float]]) -> str:
    left, top_pad = 56, 30
    parts, top, plot_w, plot_h = _plot_area(chart, series, height=300, bottom=60)
    band = plot_w / len(categories)
    xs = [left + (i + 0.5) * band for i in range(len(categories))]
    for si, values in enumerate(series):
        colour = PALETTE[si % len(PALETTE)]
        points = " ".join(f"{x:.1f},{top_pad + plot_h - plot_h * v / top:.1f}"
                          for x, v in zip(xs, values, strict=True))
        parts.append(f'<polyline class="mark" fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{points}"/>')
        for x, v, category in zip(xs, values, categories, strict=True):
            parts.append(f'<circle cx="{x:.1f}" cy="{top_pad + plot_h - plot_h * v / top:.1f}" '
                         f'r="3" fill="{colour}">'
                         f'{_mark_title(chart, category, chart.series[si], v)}</circle>')
    for x, category in zip(xs, categories, strict=True):
        label_y = top_pad + plot_h + 14
        parts.append(f'<text x="{x:.1f}" y="{label_y}" text-anchor="end" {FONT} '
                     f'transform="rotate(-40 {x:.1f} {label_y})">{escape(category[:24])}</text>')
    parts.append("</svg>")
    return "".join(parts)
