"""The end-of-run terminal summary: a headline, then one block per finding with its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import _rich_import  # noqa: F401  (first: rich must not draw from `random`)
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from ..core.format import report_written_line, run_headline, terminal_safe

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_HEADLINE_STYLE = {**_STYLE, "ok": "bold green"}


def finding_blocks(report: dict[str, Any]) -> list[Text]:
    """One block per finding: severity, code and where on one line, then the message and the fix at
    full width. Rich wraps them at spaces; a code or a path is never cut mid-identifier, so the
    summary reads the same at 80 columns as at 200 (a CI log, tmux)."""
    blocks = []
    for finding in report.get("findings", []):
        severity = str(finding.get("severity", "?"))
        block = Text()
        block.append(terminal_safe(severity), style=_STYLE.get(severity, ""))
        block.append("  ")
        block.append(terminal_safe(finding.get("code", "?")), style="bold")
        if finding.get("where"):
            block.append(f"  at {terminal_safe(finding['where'])}", style="dim")
        block.append("\n" + terminal_safe(finding.get("message", ""), keep_newlines=True))
        if finding.get("fix"):
            block.append("\nFix: ", style="bold")
            block.append(terminal_safe(finding["fix"], keep_newlines=True))
        blocks.append(block)
    return blocks


def headline(report: dict[str, Any]) -> tuple[str, str]:
    """The summary's first line and its severity (its colour), worded by ``run_headline``."""
    s = report.get("summary", {})
    counts = {"error": s.get("errors", 0), "warning": s.get("warnings", 0), "info": s.get("info", 0)}
    text, severity = run_headline(report.get("run", {}).get("status"), counts)
    epochs, steps = s.get("epochs") or 0, s.get("steps") or 0
    return (f"watchdog: {text} — {epochs} epoch{'' if epochs == 1 else 's'}, "
            f"{steps:,} optimizer step{'' if steps == 1 else 's'}"), severity


def idle_loop_line(report: dict[str, Any]) -> str | None:
    """For a run that ended with no epoch and no optimizer step: why the epoch checks said nothing (a
    loop that updates weights by hand and slices its batches, with no ``mark_epoch()``)."""
    s = report.get("summary", {})
    if (s.get("epochs") or 0) or (s.get("steps") or 0) or report.get("run", {}).get("status") != "ok":
        return None
    return ("watchdog: no training loop seen (no DataLoader pass, optimizer step or watchdog.mark_epoch()): "
            "evaluation cadence and memory growth had nothing to judge; call watchdog.mark_epoch() after "
            "each epoch to have them judged")


def print_summary(report: dict[str, Any], report_dir: Path | str, archived_to: Path | None = None,
                  console: Console | None = None, view: Any = None) -> None:
    """The headline, one block per finding, each feature's summary lines (``FeatureView.summary_lines``
    of ``view``, the run's RunView, when given), and where the report is."""
    console = console or Console(stderr=True)
    text, severity = headline(report)
    console.print(f"[{_HEADLINE_STYLE[severity]}]{escape(terminal_safe(text))}[/]", highlight=False)
    idle = idle_loop_line(report)
    if idle:
        console.print(f"[dim]{escape(idle)}[/dim]", highlight=False)
    for block in finding_blocks(report):
        console.print()
        console.print(block, highlight=False, overflow="fold")
    lines = [line for feature in (view.features.values() if view is not None else ())
             for line in feature.summary_lines()]
    if lines:
        console.print()
    for line in lines:
        console.print(Text(terminal_safe(line)), highlight=False, soft_wrap=True)
    if archived_to is not None:
        console.print(f"[dim]watchdog: the earlier report in this directory was moved to {escape(terminal_safe(archived_to))}[/dim]")
    console.print(f"[dim]{escape(report_written_line(report_dir, len(report.get('findings') or [])))}[/dim]",
                  highlight=False, soft_wrap=True)  # a path is never broken

