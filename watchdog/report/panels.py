"""Rich renderables of a RunView: the live dashboard and the one-line-per-epoch fallback.

Pure functions of the view: no I/O, no threads, no torch. `Dashboard` (watchdog/dashboard.py)
owns the Live display and decides when these are drawn. The features' tables (memory's) and their
parts of the epoch line come from their views (``FeatureView.dashboard_table``, ``epoch_line_part``).
"""
from __future__ import annotations

from typing import Any

from .. import _rich_import  # noqa: F401  (first: rich must not draw from `random`)
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..core.format import DASH, fmt_duration, fmt_rate
from .fold import RunView
from ..core.format import run_headline, terminal_safe

SPARKS = "▁▂▃▄▅▆▇█"
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan", "ok": "green",
                  "disabled": "magenta"}
SEVERITY_MARK = {"error": "✖", "warning": "▲", "info": "●", "ok": "✔", "disabled": "⊘"}


def sparkline(values: list[float], width: int = 16) -> str:
    """Block-character chart of the last `width` values, scaled to their own range."""
    vals = [v for v in values if v is not None][-width:]
    if not vals:
        return DASH
    lo, hi = min(vals), max(vals)
    if hi - lo <= 0:
        return SPARKS[3] * len(vals)
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - lo) / (hi - lo) * (len(SPARKS) - 1) + 0.5))]
                   for v in vals)


def epochs_done(view: RunView) -> str:
    """How many epochs completed, out of the run's length when known: "6" or "6/10"."""
    return f"{view.epochs}" + (f"/{view.total_epochs}" if view.total_epochs else "")


def header(view: RunView) -> Text:
    t = Text()
    t.append("epochs done ", style="dim")  # a count; the epochs themselves are numbered from 0
    t.append(epochs_done(view), style="bold")
    t.append("   steps ", style="dim")
    t.append(f"{view.steps:,}", style="bold")
    t.append("   rate ", style="dim")
    t.append(fmt_rate(view.step_rate()))
    t.append("   phase ", style="dim")
    phase_style = {"train": "bold green", "eval": "bold blue", "done": "bold"}.get(view.phase, "")
    t.append(view.phase, style=phase_style)
    if view.current_loader:
        t.append(f" ({terminal_safe(view.current_loader)})", style="dim")
    if view.phase != "done" and (view.loss is not None or view.loss_note):
        t.append("   loss ", style="dim")
        t.append(f"{view.loss:.4g}" if view.loss is not None else f"({terminal_safe(view.loss_note)})")
    t.append("   elapsed ", style="dim")
    t.append(fmt_duration(view.elapsed))
    return t


def checks_table(view: RunView, only_not_ok: bool = False) -> Table:
    table = Table(title=None if only_not_ok else "checks", title_style="bold", title_justify="left", box=None,
                  pad_edge=False, show_header=False, expand=True)
    table.add_column("mark", no_wrap=True, min_width=1)
    shown = [name for name, st in view.checks.items() if not (only_not_ok and st.severity == "ok")]
    widest = max((len(name) for name in shown), default=10)
    table.add_column("check", no_wrap=True, min_width=widest)  # a check's name is never cut
    table.add_column("severity", no_wrap=True)
    codes = [view.checks[name].code for name in shown]
    table.add_column("code", no_wrap=True, min_width=max((len(c) for c in codes), default=0))  # never cut
    table.add_column("message", no_wrap=True, overflow="ellipsis", ratio=1)
    if not view.checks and not only_not_ok:
        table.add_row("", Text("none reported yet", style="dim"), "", "", "")
    for name in sorted(view.checks):
        st = view.checks[name]
        if only_not_ok and st.severity == "ok":
            continue
        style = SEVERITY_STYLE.get(st.severity, "")
        message = st.message.splitlines()[0] if st.message else ""
        if st.code and message.startswith(st.code + ": "):
            message = message[len(st.code) + 2:]
        table.add_row(Text(SEVERITY_MARK.get(st.severity, "?"), style=style), Text(terminal_safe(name)),
                      Text(terminal_safe(st.severity), style=style), Text(terminal_safe(st.code)),
                      Text(terminal_safe(message)))
    return table


def findings_table(view: RunView, limit: int = 5) -> Table:
    table = Table(title="newest findings", title_style="bold", title_justify="left", box=None,
                  pad_edge=False, show_header=False, expand=True)
    table.add_column("when", no_wrap=True, style="dim", width=9)
    table.add_column("severity", no_wrap=True, width=7)
    recent = view.recent(limit)
    widest = max((len(f.code) for f in recent), default=4)
    table.add_column("code", no_wrap=True, min_width=widest)  # a code is never cut: the message gives way
    table.add_column("message", no_wrap=True, overflow="ellipsis", ratio=1)
    if not recent:
        table.add_row("", Text("none", style="green"), "", "")
    for f in recent:
        when = f"ep {f.epoch}" if f.epoch is not None else DASH
        table.add_row(when, Text(terminal_safe(f.severity), style=SEVERITY_STYLE.get(f.severity, "")),
                      Text(terminal_safe(f.code)),
                      Text(terminal_safe(f.message.splitlines()[0]) if f.message else DASH))
    return table


# Below these, the dashboard is compact: its header and one line per check that is not ok.
COMPACT_BELOW_COLUMNS = 100
COMPACT_BELOW_ROWS = 30
# From this width on, the features' tables and the checks sit side by side.
SIDE_BY_SIDE_COLUMNS = 140


class DashboardRenderable:
    """The live dashboard: header, epoch progress, the features' tables (memory), checks, newest findings."""

    def __init__(self, view: RunView, title: str = "watchdog"):
        self.view = view
        self.title = title

    def __rich_console__(self, console: Any, options: Any):
        compact = options.max_width < COMPACT_BELOW_COLUMNS or console.size.height < COMPACT_BELOW_ROWS
        yield self.compact() if compact else self.full(side_by_side=options.max_width >= SIDE_BY_SIDE_COLUMNS)

    def _panel(self, parts: list[Any]) -> Panel:
        v = self.view
        headline, severity = run_headline(v.status, v.counts())  # "run completed · 3 errors · ...", coloured by the worst
        subtitle = escape(f"run {terminal_safe(v.run_id)}") if v.run_id else None
        return Panel(Group(*parts), title=f"[bold]{escape(terminal_safe(self.title))}[/] · "
                                          f"[{SEVERITY_STYLE.get(severity, '')}]{escape(terminal_safe(headline))}[/]",
                     title_align="left", subtitle=subtitle, subtitle_align="right", border_style="blue")

    def compact(self) -> Panel:
        """Below ~100 columns or ~30 rows: the header, then one line per check that is not ok."""
        v = self.view
        parts: list[Any] = [header(v)]
        if v.current_batches is not None:
            parts.append(_pass_progress(v))
        table = checks_table(v, only_not_ok=True)
        parts.append(table if table.row_count else Text(f"✔ all {len(v.checks)} checks ok", style="green"))
        return self._panel(parts)

    def full(self, side_by_side: bool = True) -> Panel:
        """The features' tables and the checks side by side (wide terminals) or one above the other,
        so that no check's code is cut for want of width."""
        v = self.view
        parts: list[Any] = [header(v)]
        if v.current_batches is not None:
            parts.append(_pass_progress(v))
        tables = [t for feature in v.features.values() if (t := feature.dashboard_table()) is not None]
        features = tables[0] if len(tables) == 1 else Group(*tables)
        parts.append(Text(""))
        if side_by_side:
            grid = Table.grid(padding=(0, 3), expand=True)
            grid.add_column(no_wrap=True)
            grid.add_column(ratio=1)
            grid.add_row(features, checks_table(v))
            parts.append(grid)
        else:
            parts += [features, Text(""), checks_table(v)]
        parts.append(Text(""))
        parts.append(findings_table(v))
        return self._panel(parts)


def _pass_progress(v: RunView) -> Table:
    """Batches of the open DataLoader pass: a bar when len(loader) is known, a count otherwise."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    done = v.current_batches or 0
    if v.current_total:
        bar = ProgressBar(total=v.current_total, completed=min(done, v.current_total), width=40)
        grid.add_row(Text(f"{v.phase} pass", style="dim"), bar, Text(f"{done:,}/{v.current_total:,} batches"))
    else:
        grid.add_row(Text(f"{v.phase} pass", style="dim"), Text(f"{done:,} batches"), Text(""))
    return grid


def epoch_line(view: RunView, now: float | None = None) -> str:
    """The one concise line per epoch printed instead of the dashboard when not on a terminal."""
    c = view.counts()
    parts = [part for feature in view.features.values() if (part := feature.epoch_line_part())]
    ended = f"epoch {view.epochs - 1} ended · " if view.epochs else ""
    return (f"[watchdog] {ended}epochs done {epochs_done(view)}"
            + f" · steps {view.steps:,} · {fmt_rate(view.step_rate())}"
            + "".join(f" · {part}" for part in parts)
            + f" · findings {c['error']}E {c['warning']}W {c['info']}I")
