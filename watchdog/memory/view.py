"""The memory feature's part of the views: its samples folded per epoch, charted per source.

Folds ``memory_sample`` events into one value per source per epoch (``memory_series()``); draws one
line chart per source in the HTML report, the sparkline table of the live dashboard, and the two
first sources in the line printed per epoch when the dashboard cannot draw.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..core.format import fmt_bytes, terminal_safe
from ..report.fold import FeatureView, float_or_none, int_or_none
from ..report.markup import PALETTE, SEV_COLOR, Markup, fmt, render
from ..report.svg import Mark, line_chart

# Keys of a memory_sample's data that describe *when* it was taken, not a measurement.
_MEMORY_META_KEYS = frozenset(
    {"epoch", "steps", "step", "t", "time", "at", "when", "phase", "reason", "source", "trigger",
     "pass_index", "window", "kind", "available", "unavailable", "device_name", "name", "uuid",
     "index", "devices_total", "total_bytes", "total", "census",
     "census_stopped"}  # a census stopped at its allowance: its seconds and estimate, not memory
)
# Per-device CUDA allocator and NVML values worth a chart (the rest stays in the event log).
_CUDA_CHARTED = ("allocated", "reserved", "epoch_peak", "inactive_split")
_NVML_CHARTED = ("used",)
_CENSUS_CHARTED = {"count": "tensors", "bytes": "tensor_bytes", "graph_count": "graph_tensors",
                   "graph_bytes": "graph_bytes"}
# The charted series a memory finding's growth is about ("{device}": its evidence's device).
_GROWTH_CHARTS = {
    "memory/tensor-growth": ("tensors", "tensor_bytes"),
    "memory/cuda-growth": ("{device} allocated",),
    "memory/rss-growth": ("rss_bytes",),
}
# Sources shown first, in this order, when present (others follow alphabetically).
PREFERRED_SOURCES = ("allocated", "reserved", "inactive_split", "nvml", "rss", "tensor_bytes", "tensors",
                     "tensor_count", "graph_bytes", "graph_tensors")


@dataclass
class MemoryPoint:
    epoch: int | None
    steps: int | None
    t: float | None
    at_epoch_end: bool
    values: dict[str, float]


@dataclass(eq=False)
class MemoryView(FeatureView):
    """The run's memory samples: the epoch-end ones, and the background sampler's recent ones."""
    name = "memory"
    exports = ("memory_series",)
    section_order = 10

    at_epoch_end: list[MemoryPoint] = field(default_factory=list)
    recent: deque = field(default_factory=lambda: deque(maxlen=600))  # in-epoch samples
    last_in_epoch: dict = field(default_factory=dict)  # completed epochs k -> last sampler values

    def on_memory_sample(self, t, d):
        values = memory_values(d)
        at = str(d.get("at") or d.get("trigger") or d.get("reason") or "")  # "epoch_end" | "sampler"
        point = MemoryPoint(
            epoch=int_or_none(d.get("epoch")),
            steps=int_or_none(d.get("steps", d.get("step"))),
            t=t,
            at_epoch_end=at in ("epoch_end", "epoch", ""),
            values=values,
        )
        # The background sampler writes about one sample a second: keep only the recent ones, and
        # per epoch the last one (NVML, for one, is only in these).
        if point.at_epoch_end:
            self.at_epoch_end.append(point)
        else:
            self.recent.append(point)
            if point.epoch is not None:
                self.last_in_epoch[point.epoch] = values

    def memory_series(self) -> dict[str, list[tuple[int, float]]]:
        """Per source, one value per epoch, numbered as the user's loop numbers it (from 0): the
        sample taken at the end of epoch e, completed with the sources only the in-epoch sampler
        reads (NVML) from its last sample in epoch e (the sampler's `epoch` is the epoch in progress)."""
        per_epoch: dict[int, dict[str, float]] = {}
        if self.at_epoch_end:
            for i, p in enumerate(self.at_epoch_end):
                # An epoch-end sample's `epoch` counts the epochs completed: the one taken at the
                # end of the user's epoch e (``for e in range(n)``, from 0) has epoch e + 1.
                e = p.epoch - 1 if p.epoch is not None else i
                sampled = self.last_in_epoch.get(e, {})
                per_epoch[e] = {**sampled, **p.values}
        else:
            for i, p in enumerate(self.recent):
                per_epoch[p.epoch if p.epoch is not None else i] = p.values
        series: dict[str, list[tuple[int, float]]] = {}
        for e in sorted(per_epoch):
            for name, v in per_epoch[e].items():
                series.setdefault(name, []).append((e, v))
        return series

    # ------------------------------------------------------------------ what it shows
    def growth_marks(self) -> dict[str, list[Mark]]:
        """Per charted series, where the memory findings put its growth: the rule's baseline (the
        epoch at whose end the growth is measured from: the finding's ``evidence.baseline_epoch``)
        and where the finding fired (its stamp, ``epoch``), read from the findings as they are."""
        marks: dict[str, list[Mark]] = {}
        for f in self.run.findings_sorted():
            charted = _GROWTH_CHARTS.get(f.code)
            if charted is None:
                continue
            ev = f.evidence if isinstance(f.evidence, Mapping) else {}
            names = [name.format(device=ev.get("device") or f.key) for name in charted]
            baseline = int_or_none(ev.get("baseline_epoch"))
            color = SEV_COLOR.get(f.severity, SEV_COLOR["warning"])
            for name in names:
                if baseline is not None:
                    marks.setdefault(name, []).append(Mark(
                        baseline, "baseline", "#556", "mark-baseline", dashed=True,
                        title=f"{f.code}: growth measured from the end of epoch {baseline} (the rule's baseline)"))
                if f.epoch is not None:
                    marks.setdefault(name, []).append(Mark(
                        f.epoch, "found", color, "mark-found",
                        title=f"{f.code} found at the end of epoch {f.epoch}"))
        return marks

    def estimates(self) -> list[dict[str, Any]]:
        """What the memory findings estimate rather than measure, to say beside the charts (which
        draw measurements only): the autograd graph nodes the leaking tensors keep alive."""
        out = []
        for f in self.run.findings_sorted():
            ev = f.evidence if isinstance(f.evidence, Mapping) else {}
            estimate = float_or_none(ev.get("graph_node_bytes_per_epoch_estimate"))
            if f.code == "memory/tensor-growth" and estimate:
                out.append({"code": f.code, "bytes_per_epoch": estimate})
        return out

    def html_section(self) -> Markup:
        series = self.memory_series()
        marks = self.growth_marks()
        charts = []
        for i, name in enumerate(source_order(series)):
            pts = series[name]
            title = source_label(name)
            counted = not is_bytes_series(name)
            svg = line_chart(pts, color=PALETTE[i % len(PALETTE)], bytes_axis=not counted, label=title,
                             integer=counted and all(float(v).is_integer() for _, v in pts),
                             y_title=source_unit(name), x_title="epoch (from 0)", marks=marks.get(name, ()))
            charts.append({"source": name, "title": title, "svg": svg, "marked": name in marks})
        return render(f"{__package__}:memory.html", charts=charts, estimates=self.estimates())

    def epoch_line_part(self) -> str | None:
        """The two first sources' last values; one last measured before the latest epoch (the
        census runs within its budget, not every epoch) says the epoch it is from."""
        series = self.memory_series()
        latest = max((pts[-1][0] for pts in series.values() if pts), default=None)
        shown = []
        for name in source_order(series)[:2]:
            epoch, value = series[name][-1]
            at = f" (epoch {epoch})" if epoch != latest else ""
            shown.append(f"{terminal_safe(source_label(name, short=True))} {fmt_value(name, value)}{at}")
        return " ".join(shown) or None

    def dashboard_table(self, max_rows: int = 6) -> Any:
        """The dashboard's "memory per epoch" table: a sparkline, the last value and the mean change
        per epoch of each source. rich loads here, when the dashboard draws."""
        from .. import _rich_import  # noqa: F401  (first: rich must not draw from `random`)
        from rich.markup import escape
        from rich.table import Table
        from rich.text import Text

        from ..core.format import DASH
        from ..report.panels import sparkline

        table = Table(title="memory per epoch", title_style="bold", title_justify="left",
                      box=None, pad_edge=False, show_header=True, header_style="dim", expand=False)
        table.add_column("source", no_wrap=True, max_width=28, overflow="ellipsis")
        table.add_column("chart", no_wrap=True)
        table.add_column("last", justify="right", no_wrap=True)
        table.add_column("Δ/epoch", justify="right", no_wrap=True)
        series = self.memory_series()
        if not series:
            table.add_row(Text("no samples yet", style="dim"), DASH, DASH, DASH)
            return table
        for name in source_order(series)[:max_rows]:
            pts = series[name]
            vals = [v for _, v in pts]
            delta = DASH
            if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
                # per epoch: over the epochs between the first and last samples (a sparse census
                # samples every few epochs)
                d = (vals[-1] - vals[0]) / (pts[-1][0] - pts[0][0])
                delta = ("+" if d >= 0 else "") + (fmt_bytes(d) if is_bytes_series(name) else f"{d:,.0f}")
            table.add_row(escape(terminal_safe(source_label(name, short=True))), Text(sparkline(vals), style="cyan"),
                          fmt_value(name, vals[-1]), delta)
        if len(series) > max_rows:
            table.add_row(Text(f"+{len(series) - max_rows} more", style="dim"), "", "", "")
        return table


# ---------------------------------------------------------------------- sources
def source_order(names) -> list[str]:
    """Memory sources in display order: PREFERRED_SOURCES first, the others alphabetically."""
    def key(n: str):
        for i, p in enumerate(PREFERRED_SOURCES):
            if n == p or n.startswith(p) or n.endswith(" " + p):
                return (i, n)
        return (len(PREFERRED_SOURCES), n)
    return sorted(names, key=key)


# What the series of memory_values() are, in the words a user reads (charts, dashboard, epoch line).
SOURCE_LABELS = {
    "rss_bytes": "process RSS",
    "tensor_bytes": "live tensor bytes",
    "tensors": "live tensors",
    "graph_tensors": "graph-holding tensors",  # tensors with a grad_fn
    "graph_bytes": "graph-holding tensor bytes",
}
# The same, shorter, where a column is narrow (the dashboard's table, the line printed per epoch).
SHORT_SOURCE_LABELS = {
    "rss_bytes": "process RSS",
    "tensor_bytes": "tensor bytes",
    "tensors": "live tensors",
    "graph_tensors": "graph tensors",
    "graph_bytes": "graph bytes",
}
_DEVICE_LABELS = {
    "allocated": "CUDA allocated",
    "reserved": "CUDA reserved",
    "epoch_peak": "CUDA peak allocated in the epoch",
    "inactive_split": "CUDA inactive split blocks",
    "used": "GPU memory used (NVML)",
}


def source_label(name: str, short: bool = False) -> str:
    """The human name of a memory series: ``rss_bytes`` -> "process RSS", ``cuda:0 allocated`` ->
    "CUDA allocated (cuda:0)", ``nvml:1 used`` -> "GPU memory used (NVML) (GPU 1)"; other names as they
    are. `short`: the narrow form ("tensor bytes"; device series keep their "cuda:0 allocated" form)."""
    labels = SHORT_SOURCE_LABELS if short else SOURCE_LABELS
    if name in labels:
        return labels[name]
    if short:
        return name
    source, _, what = name.partition(" ")
    kind, _, index = source.partition(":")
    if what in _DEVICE_LABELS and kind in ("cuda", "nvml") and index:
        device = f"cuda:{index}" if kind == "cuda" else f"GPU {index}"
        return f"{_DEVICE_LABELS[what]} ({device})"
    return name


def source_unit(name: str) -> str:
    """The y axis title of a memory series' chart: "bytes" or what it counts."""
    if is_bytes_series(name):
        return "bytes"
    return "tensors" if name in ("tensors", "graph_tensors", "tensor_count") else "value"


def is_bytes_series(name: str) -> bool:
    n = name.lower()
    return "bytes" in n or n.endswith(("allocated", "reserved", "used", "rss", "active", "inactive_split",
                                         "peak", "free"))


def fmt_value(name: str, v: Any) -> str:
    return fmt_bytes(v) if is_bytes_series(name) else (f"{v:,.0f}" if isinstance(v, (int, float)) else fmt(v))


def memory_values(d: Mapping[str, Any]) -> dict[str, float]:
    """The charted values of one memory_sample, one name per source.

    The memory probe writes `rss` (bytes), `cuda` / `nvml` as lists of per-device dicts, and at
    epoch end a live-tensor `census` (count, bytes, graph_count, graph_bytes). Anything else numeric
    at the top level (other writers, older logs) is kept under its dotted name.
    """
    out: dict[str, float] = {}
    for key, value in d.items():
        if key in ("cuda", "nvml") and isinstance(value, list):
            charted = _CUDA_CHARTED if key == "cuda" else _NVML_CHARTED
            for i, dev in enumerate(value):
                if not isinstance(dev, Mapping):
                    continue
                idx = dev.get("device", i)
                for name in charted:
                    v = float_or_none(dev.get(name))
                    if v is not None:
                        out[f"{key}:{idx} {name}"] = v
        elif key == "census" and isinstance(value, Mapping):
            for name, label in _CENSUS_CHARTED.items():
                v = float_or_none(value.get(name))
                if v is not None:
                    out[label] = v
        elif key == "rss":
            v = float_or_none(value)
            if v is not None:
                out["rss_bytes"] = v
        elif key in _MEMORY_META_KEYS or key.endswith("_diff") or key in ("top", "culprits"):
            continue
        else:
            out.update(flatten_numeric({key: value}))
    return out


def flatten_numeric(d: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a memory sample as dotted names ("cuda.0.allocated": 1.2e9)."""
    out: dict[str, float] = {}
    if isinstance(d, Mapping):
        for k, v in d.items():
            k = str(k)
            if not prefix and k in _MEMORY_META_KEYS:
                continue
            if k in ("epoch", "steps", "step", "t", "time", "index", "pid"):
                continue
            name = f"{prefix}.{k}" if prefix else k
            out.update(flatten_numeric(v, name))
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            out.update(flatten_numeric(v, f"{prefix}.{i}" if prefix else str(i)))
    elif isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d) and prefix:
        out[prefix] = float(d)
    return out
