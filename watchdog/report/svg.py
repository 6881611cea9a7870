"""Inline SVG charts for the HTML report: a line chart per epoch, grouped vertical bars, horizontal bars.

Generic: the features' views (``watchdog/<feature>/view.py``) say what to draw; every text drawn goes
through `esc()`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..core.format import fmt_bytes
from .markup import esc, number_text


@dataclass
class Bar:
    """One vertical bar of a group: its value, fill, CSS class and tooltip."""
    value: float
    color: str
    css_class: str
    title: str


@dataclass
class BarGroup:
    """The bars drawn side by side at one x position, under `label`; `shade` fills its slot behind them."""
    label: str
    bars: Sequence[Bar]
    shade: str | None = None


@dataclass
class HorizontalBar:
    """One row of a horizontal bar chart: `value` drawn over `of` (a lighter bar, when known)."""
    label: str
    value: float | None
    of: float | None
    color: str
    css_class: str


def ticks(x0: int, x1: int, most: int = 8) -> list[int]:
    """At most `most` evenly spaced integer ticks from x0 to x1."""
    if x1 <= x0:
        return [x0]
    step = max(1, math.ceil((x1 - x0) / most))
    return list(range(x0, x1 + 1, step))


def _open(width: float, height: float, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}">')


_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


@dataclass
class Axis:
    """A value axis fitted to the data: its range, tick values and their labels (all distinct)."""
    low: float
    high: float
    values: list[float]
    labels: list[str]
    unit: str  # what the labels count: "B", "KiB"... for bytes, else the caller's unit


def nice_step(raw: float, integer: bool = False) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `raw` (at least 1 for counts)."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(f * magnitude for f in (1, 2, 5, 10) if f * magnitude >= raw * (1 - 1e-9))
    return max(1.0, round(step)) if integer else step


def value_axis(values: Sequence[float], *, bytes_axis: bool = False, integer: bool = False,
               unit: str = "", most: int = 5) -> Axis:
    """Ticks for `values`: the range fitted to the data (not drawn from 0 unless the data nears it),
    1/2/5 steps, integer ticks for counts, in one binary unit for bytes, and labels that never repeat."""
    lo, hi = min(values), max(values)
    if hi == lo:
        half = 1.0 if integer or lo == 0 else abs(lo) * 0.05
        lo, hi = lo - half, hi + half
        if min(values) >= 0:
            lo = max(lo, 0.0)
    scale, unit_name = 1.0, unit
    if bytes_axis:
        biggest = max(abs(lo), abs(hi))
        k = 0
        while k < len(_BYTE_UNITS) - 1 and biggest >= 1024.0 ** (k + 1):
            k += 1
        scale, unit_name = 1024.0 ** k, _BYTE_UNITS[k]
        integer = integer or k == 0  # no fraction of a byte
    step = nice_step((hi - lo) / scale / max(1, most - 1), integer) * scale
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    if first < 0 <= min(values):
        first = 0.0
    count = int(round((last - first) / step)) + 1
    ticks_at = [first + i * step for i in range(count)]
    decimals = 0 if integer else max(0, -math.floor(math.log10(step / scale) + 1e-9))
    labels = [f"{v / scale:,.{decimals}f}" + (f" {unit_name}" if bytes_axis else "") for v in ticks_at]
    return Axis(low=first, high=last, values=ticks_at, labels=labels, unit=unit_name)


def line_chart(points: list[tuple[int, float]], color: str = "#1565c0", bytes_axis: bool = False,
               label: str = "", width: int = 320, height: int = 160, integer: bool = False,
               y_title: str = "", x_title: str = "epoch", point_text=None) -> str:
    """A small line chart (x: epoch, y: value) as inline SVG, with axis titles.

    The y range is fitted to the data; `integer` gives whole-number ticks (counts); `point_text`
    formats a point's value for its tooltip (the tick format by default)."""
    ml, mr, mt, mb = 72, 10, 8, 36
    pw, ph = width - ml - mr, height - mt - mb
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    x0, x1 = min(xs), max(xs)
    axis = value_axis(ys, bytes_axis=bytes_axis, integer=integer)
    y0, y1 = axis.low, axis.high

    def px(x):
        return ml + (pw * (x - x0) / (x1 - x0) if x1 != x0 else pw / 2)

    def py(y):
        return mt + ph - ph * (y - y0) / (y1 - y0)

    if point_text is None:
        point_text = fmt_bytes if bytes_axis else number_text
    parts = [_open(width, height, f"{label} per epoch")]
    for yv, text in zip(axis.values, axis.labels):
        yy = py(yv)
        parts.append(f'<line x1="{ml}" y1="{yy:.1f}" x2="{ml + pw}" y2="{yy:.1f}" stroke="#e3e5ea"/>')
        parts.append(f'<text class="tick" x="{ml - 4}" y="{yy + 3:.1f}" text-anchor="end">{esc(text)}</text>')
    for x in ticks(x0, x1):
        parts.append(f'<text class="tick" x="{px(x):.1f}" y="{mt + ph + 13}" text-anchor="middle">{x}</text>')
    parts.append(f'<line x1="{ml}" y1="{mt + ph}" x2="{ml + pw}" y2="{mt + ph}" stroke="#99a"/>')
    if x_title:
        parts.append(f'<text class="axis-title" x="{ml + pw / 2:.1f}" y="{height - 4}" '
                     f'text-anchor="middle">{esc(x_title)}</text>')
    if y_title:
        parts.append(f'<text class="axis-title" x="12" y="{mt + ph / 2:.1f}" text-anchor="middle" '
                     f'transform="rotate(-90 12 {mt + ph / 2:.1f})">{esc(y_title)}</text>')
    coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
    parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
    for x, y in points:
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{color}">'
                     f'<title>epoch {x}: {esc(point_text(y))}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def grouped_bar_chart(groups: Sequence[BarGroup], label: str, top: float | None = None,
                      height: int = 130) -> str:
    """Vertical bars, grouped per x position (an epoch), against 0..`top` (the largest bar by default)."""
    n = len(groups)
    ml, mr, mt, mb = 30, 10, 8, 24
    slot = max(6.0, min(40.0, 1000.0 / max(n, 1)))
    width = int(ml + mr + slot * n)
    ph = height - mt - mb
    if top is None:
        top = max([bar.value for group in groups for bar in group.bars] + [1])
    parts = [_open(width, height, label)]
    parts.append(f'<text x="{ml - 4}" y="{mt + 8}" text-anchor="end">{top}</text>')
    parts.append(f'<text x="{ml - 4}" y="{mt + ph}" text-anchor="end">0</text>')
    bw = slot * 0.38
    step_label = max(1, n // 20)
    for i, group in enumerate(groups):
        x = ml + slot * i
        if group.shade:
            parts.append(f'<rect x="{x:.1f}" y="{mt}" width="{slot:.1f}" height="{ph}" fill="{group.shade}"/>')
        for j, bar in enumerate(group.bars):
            h = ph * bar.value / top
            parts.append(f'<rect class="{esc(bar.css_class)}" x="{x + slot * 0.1 + j * bw:.1f}" y="{mt + ph - h:.1f}" '
                         f'width="{bw:.1f}" height="{h:.1f}" fill="{bar.color}">'
                         f'<title>{esc(bar.title)}</title></rect>')
        if i % step_label == 0 or i == n - 1:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{height - 8}" text-anchor="middle">{esc(group.label)}</text>')
    parts.append(f'<line x1="{ml}" y1="{mt + ph}" x2="{width - mr}" y2="{mt + ph}" stroke="#99a"/>')
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bar_chart(rows: Sequence[HorizontalBar], label: str, width: int = 640) -> str:
    """One horizontal bar per row, labelled on the left, its value (of its total) on the right."""
    bar_h, gap, ml = 18, 8, 220
    height = len(rows) * (bar_h + gap) + gap
    top = max([r.of or r.value or 0 for r in rows] + [1])
    pw = width - ml - 80
    parts = [_open(width, height, label)]
    for i, r in enumerate(rows):
        y = gap + i * (bar_h + gap)
        text = r.label if len(r.label) <= 34 else r.label[:33] + "…"
        parts.append(f'<text x="{ml - 6}" y="{y + 13}" text-anchor="end">{esc(text)}</text>')
        if r.of:
            parts.append(f'<rect x="{ml}" y="{y}" width="{pw * r.of / top:.1f}" height="{bar_h}" fill="#e3e5ea"/>')
        w = pw * (r.value or 0) / top
        parts.append(f'<rect class="{esc(r.css_class)}" x="{ml}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                     f'fill="{r.color}"/>')
        caption = number_text(r.value) + (f" / {number_text(r.of)}" if r.of else "")
        parts.append(f'<text x="{ml + max(w, pw * (r.of or 0) / top) + 6:.1f}" y="{y + 13}">{esc(caption)}</text>')
    parts.append("</svg>")
    return "".join(parts)
