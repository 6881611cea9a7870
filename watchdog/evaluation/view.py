"""The evaluation feature's part of the views: per epoch, its loader passes and the cadence check's verdict.

Folds ``eval_window`` (the evaluation-cadence check's verdict on one trained epoch) and, with the
run's passes and the ``eval/missing-epochs`` finding, makes one row per epoch (``eval_cadence()``):
charted as bars in the HTML report, and counted in the line printed per epoch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..report.fold import FeatureView
from ..report.markup import Markup, render
from ..report.svg import Bar, BarGroup, grouped_bar_chart

_PASS_COLORS = (("train", "#1565c0"), ("eval", "#2e7d32"))
_FLAGGED_SHADE = "#fde8e8"


@dataclass(eq=False)
class EvaluationView(FeatureView):
    """The cadence check's verdicts, per epoch."""
    name = "evaluation"
    exports = ("eval_cadence",)
    section_order = 20

    windows: dict[int, dict] = field(default_factory=dict)  # epoch -> the cadence check's verdict

    def on_eval_window(self, t, d):
        epoch = d.get("epoch")
        if isinstance(epoch, int) and epoch >= 0:
            self.windows[epoch] = dict(d)

    def eval_cadence(self) -> list[dict[str, Any]]:
        """One row per epoch (numbered from 0, as the findings do): its train, eval and unknown passes,
        the cadence check's verdict (``evaluated``: True / False / None before the check judged it,
        ``by``: what evaluated it) and whether the check flagged it (``flagged``: in the latest
        ``eval/missing-epochs`` finding)."""
        run = self.run
        n = max([run.epochs] + [p.epoch + 1 for p in run.passes] + [e + 1 for e in self.windows] + [0])
        rows = [{"epoch": i, "train": 0, "eval": 0, "unknown": 0, "evaluated": None, "by": [], "flagged": False}
                for i in range(n)]
        for p in run.passes:
            if p.epoch < n:
                key = p.role if p.role in ("train", "eval") else "unknown"
                rows[p.epoch][key] += 1
        for epoch, verdict in self.windows.items():
            rows[epoch]["evaluated"] = bool(verdict.get("evaluated"))
            rows[epoch]["by"] = [str(b) for b in verdict.get("by") or []]
        for f in run.findings.values():
            if f.code == "eval/missing-epochs" and isinstance(f.evidence, Mapping):
                for epoch in f.evidence.get("missing_epochs") or []:
                    if isinstance(epoch, int) and 0 <= epoch < n:
                        rows[epoch]["flagged"] = True
        return rows

    # ------------------------------------------------------------------ what it shows
    def html_section(self) -> Markup:
        rows = self.eval_cadence()
        judged = [r for r in rows if r["evaluated"] is not None]
        return render(f"{__package__}:cadence.html", rows=rows, chart=cadence_chart(rows) if rows else "",
                      judged=len(judged), evaluated=sum(1 for r in judged if r["evaluated"]),
                      by=sorted({b for r in judged for b in r["by"]}),
                      unevaluated=[r["epoch"] for r in judged if not r["evaluated"]],
                      flagged=[r["epoch"] for r in rows if r["flagged"]])

    def epoch_line_part(self) -> str | None:
        rows = self.eval_cadence()
        return f"eval passes {rows[-1]['eval'] if rows else 0}"


def cadence_chart(rows: list[dict[str, Any]]) -> Markup:
    """Grouped bars per epoch: training passes and evaluation passes; flagged epochs shaded red."""
    groups = [BarGroup(label=str(r["epoch"]), shade=_FLAGGED_SHADE if r["flagged"] else None,
                       bars=[Bar(r[key], color, f"bar-{key}", f"epoch {r['epoch']}: {r[key]} {key} pass(es)")
                             for key, color in _PASS_COLORS])
              for r in rows]
    top = max([max(r["train"], r["eval"], r["unknown"]) for r in rows] + [1])
    return grouped_bar_chart(groups, "evaluation cadence per epoch", top=top)
