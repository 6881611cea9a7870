"""The overlap feature's part of the views: the train/eval overlaps its check found, as bars and a table.

Reads the findings alone (the overlap check's evidence carries the counts): one row per finding
(``overlaps()``), charted against the eval set's size in the HTML report.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..report.fold import FeatureView, FindingView
from ..report.markup import SEV_COLOR, Markup, render
from ..report.svg import HorizontalBar, horizontal_bar_chart


@dataclass(eq=False)
class OverlapView(FeatureView):
    """Train/eval overlap counts, from the findings."""
    name = "overlap"
    exports = ("overlaps",)
    section_order = 30

    def overlaps(self) -> list[dict[str, Any]]:
        """Train/eval overlap counts found by the overlap check, one row per finding."""
        rows = []
        for f in self.run.findings.values():
            ev = f.evidence if isinstance(f.evidence, Mapping) else {}
            if f.family != "overlap" and "overlap" not in ev:
                continue
            count = _first_number(ev, ("overlap", "overlap_count", "eval_samples_seen"))
            if count is None:
                continue
            total = _first_number(ev, ("eval_samples", "eval_size", "eval_samples_seen"))
            rows.append({"label": _overlap_label(f, ev), "count": count, "total": total,
                         "severity": f.severity, "code": f.code})
        return rows

    def html_section(self) -> Markup:
        rows = self.overlaps()
        bars = [HorizontalBar(r["label"], r["count"], r["total"], SEV_COLOR.get(r["severity"], "#c62828"),
                              "bar-overlap") for r in rows]
        return render(f"{__package__}:overlap.html", rows=rows,
                      chart=horizontal_bar_chart(bars, "train/eval overlap counts") if rows else "")


def _first_number(ev: Mapping[str, Any], keys) -> float | None:
    for k in keys:
        v = ev.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _label(x: Any) -> str | None:
    if isinstance(x, str):
        return x
    if isinstance(x, Mapping):
        for k in ("label", "name"):
            if isinstance(x.get(k), str):
                return x[k]
        names = x.get("names")
        if isinstance(names, list) and names:
            return str(names[0])
    if isinstance(x, list):
        labels = [lb for lb in map(_label, x) if lb]
        return " + ".join(labels) if labels else None
    return None


def _overlap_label(f: FindingView, ev: Mapping[str, Any]) -> str:
    train = _label(ev.get("train_loaders")) or _label(ev.get("train_loader")) or _label(ev.get("train"))
    evl = _label(ev.get("eval_loader")) or _label(ev.get("eval")) or _label(ev.get("loader"))
    parts = [p for p in (train, evl) if p]
    if parts:
        return " / ".join(parts)
    return str(f.key) if f.key is not None else f.code
