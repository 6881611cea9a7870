"""The distributed feature's part of the views: which rank this is, and in a merged report, every rank.

Reads two things the events hold and decides nothing:

- ``run_start``'s ``rank`` (``RankInfo`` as logged): a rank's own epoch lines say ``rank 1/2``
  (printed by ranks other than the dashboard's only when asked: ``rank_lines``);
- ``ranks_merged`` (only in a merged report's stream, ``merge.merged_events``): each rank's state as
  the merge decided it (finished / died in epoch E, last seen at step S / not finished / never
  started), its epochs, steps and own findings, the stale folders left out, and what the merge read.
  It gives the HTML its ranks table (first among the features' sections, since the charts below it
  are the representative rank's), a summary card, and the terminal summary's ranks lines.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..core.format import fmt_bytes, fmt_ranks
from ..report.fold import FeatureView
from ..report.markup import SEV_COLOR, esc, number_text

_STATE_SEVERITY = {"finished": "ok", "died": "error", "running": "warning", "never started": "warning",
                   "stale": "info"}


@dataclass(eq=False)
class DistributedView(FeatureView):
    """The rank of a rank's own run; the ranks of a merged run."""
    name = "distributed"
    exports = ("rank_states",)
    section_order = 5

    rank: dict[str, Any] | None = None  # run_start's rank (RankInfo as logged), None on one process
    merged: dict[str, Any] | None = None  # the ranks_merged event's data, in a merged report

    def on_run_start(self, t: float | None, data: Mapping[str, Any]) -> None:
        rank = data.get("rank")
        self.rank = dict(rank) if isinstance(rank, Mapping) else None

    def on_ranks_merged(self, t: float | None, data: Mapping[str, Any]) -> None:
        self.merged = dict(data)

    def rank_states(self) -> list[dict[str, Any]]:
        """Each rank of a merged report (rank, state, describe, epochs, steps, findings, ...), then the
        stale folders; empty for one rank's own run."""
        if self.merged is None:
            return []
        return [dict(r) for r in (self.merged.get("ranks") or []) + (self.merged.get("stale") or [])
                if isinstance(r, Mapping)]

    # -- the parts --------------------------------------------------------------------------------
    def epoch_line_part(self) -> str | None:
        if self.merged is None and self.rank and isinstance(self.rank.get("rank"), int):
            return f"rank {self.rank['rank']}/{self.rank.get('world_size')}"
        return None

    def summary_cards(self) -> list[tuple[str, str]]:
        if self.merged is None:
            return []
        ranks = [r for r in self.rank_states() if r.get("state") != "stale"]
        finished = sum(1 for r in ranks if r.get("state") == "finished")
        colour = SEV_COLOR["ok"] if finished == len(ranks) else SEV_COLOR["error"]
        return [("ranks finished", f'<span style="color:{colour}">{finished} of {len(ranks)}</span>')]

    def summary_lines(self) -> list[str]:
        if self.merged is None:
            return []
        ranks = [r for r in self.rank_states() if r.get("state") != "stale"]
        finished = [r["rank"] for r in ranks if r.get("state") == "finished"]
        merged_by = self.merged.get("merged_by")
        by = f"merged by rank {merged_by}, the last to finish" if isinstance(merged_by, int) else \
            "merged by watchdog report"
        head = f"watchdog: {len(ranks)} ranks ({by})"
        if finished:
            head += f": {fmt_ranks(finished)} finished"
        lines = [head]
        for r in ranks:
            if r.get("state") != "finished" or r.get("status") not in (None, "ok"):
                findings = r.get("findings") or 0
                lines.append(f"watchdog: rank {r.get('rank')} {r.get('describe')} "
                             f"({findings} finding{'' if findings == 1 else 's'} of its own"
                             + (", its flushed events merged)" if r.get("state") == "died" else ")"))
        for r in self.rank_states():
            if r.get("state") == "stale":
                lines.append(f"watchdog: {r.get('folder')}/ is from another run (job {r.get('job')}): "
                             "stale, not merged")
        lines.append("watchdog: each rank's own report is in its folder (rank<N>/report.html)")
        return lines

    def html_section(self) -> str:
        if self.merged is None:
            return ""
        m = self.merged
        rows = []
        for r in self.rank_states():
            state = str(r.get("state"))
            severity = "warning" if state == "finished" and r.get("status") not in (None, "ok") else \
                _STATE_SEVERITY.get(state, "info")
            colour = SEV_COLOR.get(severity, "inherit")
            folder = r.get("folder")
            link = (f'<a href="{esc(folder)}/report.html"><span class="mono">{esc(folder)}/</span></a>'
                    if folder and state != "stale" else f'<span class="mono">{esc(folder)}</span>')
            rows.append(
                f"<tr data-rank=\"{esc(r.get('rank'))}\" data-state=\"{esc(state)}\">"
                f"<td class=\"num\">{esc(r.get('rank'))}</td>"
                f"<td style=\"color:{colour}\">{esc(r.get('describe') or state)}</td>"
                f"<td class=\"num\">{esc(number_text(r.get('epochs')))}</td>"
                f"<td class=\"num\">{esc(number_text(r.get('steps')))}</td>"
                f"<td class=\"num\">{esc(number_text(r.get('findings')))}</td>"
                f"<td>{esc(r.get('host'))}</td><td class=\"num\">{esc(r.get('pid'))}</td><td>{link}</td></tr>")
        work: Mapping[str, Any] = m["work"] if isinstance(m.get("work"), Mapping) else {}
        merged_by = m.get("merged_by")
        by = f"rank {merged_by}, the last to finish" if isinstance(merged_by, int) else "watchdog report"
        seconds = work.get("seconds")
        notes = [f"Merged by {esc(by)}: {esc(number_text(work.get('logs_read')))} event logs read once "
                 f"({esc(fmt_bytes(work.get('bytes_read')))}, {esc(number_text(work.get('events_read')))} events)"
                 + (f" and merged in {esc(f'{seconds * 1000:.1f}')} ms" if isinstance(seconds, (int, float)) else "")
                 + "."]
        notes.append(f"Findings reported by several ranks appear once, naming the ranks. The charts and tables "
                     f"below are rank {esc(m.get('representative'))}'s own events.")
        if m.get("superseded"):
            notes.append("Decided across ranks instead of per rank: "
                         + ", ".join(f"<code>{esc(c)}</code>" for c in m["superseded"]) + ".")
        if m.get("failed_checks"):
            notes.append("Cross-rank checks that failed: " + esc(", ".join(sorted(m["failed_checks"]))) + ".")
        return ("<section id=\"ranks\"><h2>Ranks</h2>"
                "<table><thead><tr><th>rank</th><th>state</th><th>epochs</th><th>steps</th><th>own findings</th>"
                "<th>host</th><th>pid</th><th>folder</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
                + "".join(f"<p class=\"muted\">{note}</p>" for note in notes) + "</section>")
