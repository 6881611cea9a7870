"""Inline SVG charts for the HTML report: a line chart per epoch, grouped vertical bars, horizontal bars.

Generic: the features' views (``watchdog/<feature>/view.py``) say what to draw. Here the geometry
is computed (value axes with "nice" ticks: 1, 2, 2.5 or 5 times a power of ten, whole numbers for
counts, one binary unit for bytes, a range fitted to the data, no label twice); the SVG itself is
the templates ``line_chart.svg``, ``bar_chart.svg`` and ``horizontal_bar_chart.svg``, autoescaped
like the rest of the page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..core.format import fmt_bytes
from .markup import Markup, number_text, render


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


@dataclass
class Mark:
    """A vertical line across a line chart at `x` (an epoch), labelled: where a rule's baseline is,
    where a finding fired. `css_class` names it for tests and styling; `title` is its tooltip."""
    x: float
    label: str
    color: str
    css_class: str
    title: str = ""
    dashed: bool = False


# ---------------------------------------------------------------------- axes
NICE_FACTORS = (1.0, 2.0, 2.5, 5.0)
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


@dataclass
class Axis:
    """A value axis fitted to the data: its range, tick values and their labels (all distinct)."""
    low: float
    high: float
    values: list[float]
    labels: list[str]
    unit: str  # what the labels count: "B", "KiB"... for bytes, else the caller's unit
    step: float = 0.0  # between ticks, in the axis' values (bytes for a bytes axis)


def nice_step(raw: float, integer: bool = False) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above `raw`; for counts (`integer`) a
    whole number, at least 1 (2.5 only from 25 up)."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    if integer and raw <= 1:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in NICE_FACTORS + (10.0,):
        step = factor * magnitude
        if integer and not _is_whole(step):
            continue
        if step >= raw * (1 - 1e-9):
            return float(round(step)) if integer else step
    return 10.0 * magnitude  # pragma: no cover (the loop ends at 10 x magnitude)


def _is_whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-9 * max(1.0, abs(x))


def _decimals(step: float) -> int:
    """The fewest decimals that write every multiple of `step` exactly (2.5 -> 1, 0.25 -> 2, 50 -> 0)."""
    for d in range(0, 12):
        if abs(round(step, d) - step) <= 1e-9 * step:
            return d
    return 12


def value_axis(values: Sequence[float], *, bytes_axis: bool = False, integer: bool = False,
               unit: str = "", most: int = 5) -> Axis:
    """Ticks for `values`: the range fitted to the data (not drawn from 0 unless the data nears it),
    1/2/2.5/5 steps, integer ticks for counts, in one binary unit for bytes (the one the largest value
    is written in: round numbers of MiB, of GiB), and labels that never repeat."""
    lo, hi = min(values), max(values)
    if hi == lo:
        half = 1.0 if (integer and not bytes_axis) or lo == 0 else abs(lo) * 0.05
        lo, hi = lo - half, hi + half
        if min(values) >= 0:
            lo = max(lo, 0.0)
    scale, unit_name, whole = 1.0, unit, integer
    if bytes_axis:
        biggest = max(abs(v) for v in values)  # the data's, not the padding's
        k = 0
        while k < len(_BYTE_UNITS) - 1 and biggest >= 1024.0 ** (k + 1):
            k += 1
        scale, unit_name = 1024.0 ** k, _BYTE_UNITS[k]
        whole = integer or k == 0  # no fraction of a byte (`integer`: whole units)
    raw = (hi - lo) / scale / max(1, most - 1)
    if bytes_axis:
        raw = max(raw, 1.0 / scale)  # no step below a byte, whatever the unit
    step = nice_step(raw, whole) * scale
    first_i = math.floor(lo / step + 1e-9)
    last_i = math.ceil(hi / step - 1e-9)
    if first_i < 0 <= min(values):
        first_i = 0
    ticks_at = [i * step for i in range(first_i, last_i + 1)]
    first, last = ticks_at[0], ticks_at[-1]
    decimals = 0 if whole else _decimals(step / scale)
    labels = [f"{v / scale:,.{decimals}f}" + (f" {unit_name}" if bytes_axis else "") for v in ticks_at]
    return Axis(low=first, high=last, values=ticks_at, labels=labels, unit=unit_name, step=step)


def ticks(x0: int, x1: int, most: int = 8) -> list[int]:
    """Integer ticks from x0 to x1 at a nice step (1, 2, 5, 10, 20, 25, 50...), at most about `most`."""
    if x1 <= x0:
        return [x0]
    step = int(nice_step((x1 - x0) / most, integer=True))
    return list(range(math.ceil(x0 / step) * step, x1 + 1, step))


# ---------------------------------------------------------------------- charts
@dataclass
class _Tick:
    at: float
    text: str


@dataclass
class _Point:
    x: float
    y: float
    title: str


@dataclass
class _PlacedMark:
    x: float
    label: str
    color: str
    css_class: str
    title: str
    dashed: bool
    anchor: str
    label_y: float


@dataclass
class _LineChart:
    width: int
    height: int
    label: str
    color: str
    left: float
    right: float
    top: float
    bottom: float
    y_ticks: list[_Tick] = field(default_factory=list)
    x_ticks: list[_Tick] = field(default_factory=list)
    x_title: str = ""
    y_title: str = ""
    points: list[_Point] = field(default_factory=list)
    marks: list[_PlacedMark] = field(default_factory=list)


def line_chart(points: list[tuple[int, float]], color: str = "#1565c0", bytes_axis: bool = False,
               label: str = "", width: int = 320, height: int = 160, integer: bool = False,
               y_title: str = "", x_title: str = "epoch", point_text: Callable | None = None,
               marks: Sequence[Mark] = ()) -> Markup:
    """A small line chart (x: epoch, y: value) as inline SVG, with axis titles.

    The y range is fitted to the data; `integer` gives whole-number ticks (counts); `point_text`
    formats a point's value for its tooltip (the tick format by default); `marks` draw labelled
    vertical lines (a rule's baseline, where a finding fired) at their epochs."""
    ys = [y for _, y in points]
    axis = value_axis(ys, bytes_axis=bytes_axis, integer=integer, most=4)
    # room on the left for the longest tick label (~6 px a character at 10 px) and the axis title
    ml, mr, mt, mb = 24 + 6 * max(len(label) for label in axis.labels), 10, 14 if marks else 8, 36
    pw, ph = width - ml - mr, height - mt - mb
    xs = [x for x, _ in points] + [m.x for m in marks]
    x0, x1 = min(xs), max(xs)
    y0, y1 = axis.low, axis.high

    def px(x: float) -> float:
        return ml + (pw * (x - x0) / (x1 - x0) if x1 != x0 else pw / 2)

    def py(y: float) -> float:
        return mt + ph - ph * (y - y0) / (y1 - y0)

    if point_text is None:
        point_text = fmt_bytes if bytes_axis else number_text
    chart = _LineChart(width=width, height=height, label=f"{label} per epoch", color=color,
                       left=ml, right=ml + pw, top=mt, bottom=mt + ph, x_title=x_title, y_title=y_title)
    chart.y_ticks = [_Tick(py(v), text) for v, text in zip(axis.values, axis.labels)]
    chart.x_ticks = [_Tick(px(x), str(x)) for x in ticks(int(x0), int(x1))]
    chart.points = [_Point(px(x), py(y), f"epoch {x}: {point_text(y)}") for x, y in points]
    for i, m in enumerate(sorted(marks, key=lambda m: m.x)):
        x = px(m.x)
        anchor = "start" if x < ml + pw * 0.6 else "end"
        chart.marks.append(_PlacedMark(x=x, label=m.label, color=m.color, css_class=m.css_class,
                                       title=m.title or m.label, dashed=m.dashed,
                                       anchor=anchor, label_y=mt - 3 + 10 * (i % 2)))
    return render("line_chart.svg", chart=chart)


@dataclass
class _PlacedBar:
    x: float
    y: float
    width: float
    height: float
    color: str
    css_class: str
    title: str


@dataclass
class _PlacedGroup:
    x: float
    width: float
    shade: str | None
    bars: list[_PlacedBar]
    label: str | None  # None: not labelled (too many groups to label each)


def grouped_bar_chart(groups: Sequence[BarGroup], label: str, top: float | None = None,
                      height: int = 130) -> Markup:
    """Vertical bars, grouped per x position (an epoch), against whole-number ticks from 0 to at
    least `top` (the largest bar by default)."""
    n = len(groups)
    ml, mr, mt, mb = 30, 10, 8, 24
    slot = max(6.0, min(40.0, 1000.0 / max(n, 1)))
    width = int(ml + mr + slot * n)
    ph = height - mt - mb
    if top is None:
        top = max([bar.value for group in groups for bar in group.bars] + [1])
    axis = value_axis([0, max(top, 1)], integer=True, most=3)
    y_top = axis.high
    bw = slot * 0.38
    label_every = int(nice_step(n / 20, integer=True)) if n > 20 else 1
    placed = []
    for i, group in enumerate(groups):
        x = ml + slot * i
        bars = []
        for j, bar in enumerate(group.bars):
            h = ph * bar.value / y_top
            bars.append(_PlacedBar(x + slot * 0.1 + j * bw, mt + ph - h, bw, h, bar.color, bar.css_class, bar.title))
        shown = i % label_every == 0 or (i == n - 1 and i % label_every > label_every / 2)
        placed.append(_PlacedGroup(x, slot, group.shade, bars, group.label if shown else None))
    y_ticks = [_Tick(mt + ph - ph * v / y_top, text) for v, text in zip(axis.values, axis.labels)]
    return render("bar_chart.svg", width=width, height=height, label=label, left=ml, right=width - mr,
                  top=mt, bottom=mt + ph, groups=placed, y_ticks=y_ticks)


@dataclass
class _PlacedRow:
    y: float
    text: str
    width: float
    of_width: float | None
    color: str
    css_class: str
    caption: str
    caption_x: float


def horizontal_bar_chart(rows: Sequence[HorizontalBar], label: str, width: int = 640) -> Markup:
    """One horizontal bar per row, labelled on the left, its value (of its total) on the right."""
    bar_h, gap, ml = 18, 8, 220
    height = len(rows) * (bar_h + gap) + gap
    top = max([r.of or r.value or 0 for r in rows] + [1])
    pw = width - ml - 80
    placed = []
    for i, r in enumerate(rows):
        w = pw * (r.value or 0) / top
        of_w = pw * r.of / top if r.of else None
        placed.append(_PlacedRow(
            y=gap + i * (bar_h + gap), text=r.label if len(r.label) <= 34 else r.label[:33] + "…",
            width=w, of_width=of_w, color=r.color, css_class=r.css_class,
            caption=number_text(r.value) + (f" / {number_text(r.of)}" if r.of else ""),
            caption_x=ml + max(w, of_w or 0) + 6))
    return render("horizontal_bar_chart.svg", width=width, height=height, label=label, left=ml,
                  bar_height=bar_h, rows=placed)
