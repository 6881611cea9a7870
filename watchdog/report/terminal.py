"""The end-of-run terminal summary: one row per finding, with its fix (a rich table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import _rich_import  # noqa: F401  (first: rich must not draw from `random`)
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..core.format import run_headline, terminal_safe

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_HEADLINE_STYLE = {**_STYLE, "ok": "bold green"}


def summary_table(report: dict[str, Any]) -> Table:
    table = Table(show_lines=True, expand=False, title=None)
    table.add_column("severity", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("finding and fix", overflow="fold")
    for finding in report.get("findings", []):
        severity = finding.get("severity", "?")
        text = escape(terminal_safe(finding.get("message", ""), keep_newlines=True))
        if finding.get("where"):
            text += f"\n[dim]at {escape(terminal_safe(finding['where']))}[/dim]"
        if finding.get("fix"):
            text += f"\n[bold]Fix:[/bold] {escape(terminal_safe(finding['fix'], keep_newlines=True))}"
        table.add_row(f"[{_STYLE.get(severity, '')}]{escape(terminal_safe(severity))}[/]",
                      escape(terminal_safe(finding.get("code", "?"))), text)
    return table


def headline(report: dict[str, Any]) -> tuple[str, str]:
    """The summary's first line and its severity (its colour), worded by ``run_headline``."""
    s = report.get("summary", {})
    counts = {"error": s.get("errors", 0), "warning": s.get("warnings", 0), "info": s.get("info", 0)}
    text, severity = run_headline(report.get("run", {}).get("status"), counts)
    epochs, steps = s.get("epochs") or 0, s.get("steps") or 0
    return (f"watchdog: {text} — {epochs} epoch{'' if epochs == 1 else 's'}, "
            f"{steps:,} optimizer step{'' if steps == 1 else 's'}"), severity


def print_summary(report: dict[str, Any], report_dir: Path | str, archived_to: Path | None = None,
                  console: Console | None = None) -> None:
    console = console or Console(stderr=True)
    text, severity = headline(report)
    console.print(f"[{_HEADLINE_STYLE[severity]}]{escape(terminal_safe(text))}[/]", highlight=False)
    if report.get("findings"):
        console.print(summary_table(report))
    if archived_to is not None:
        console.print(f"[dim]watchdog: the earlier report in this directory was moved to {escape(terminal_safe(archived_to))}[/dim]")
    console.print(f"[dim]{escape(report_written_line(report_dir, len(report.get('findings') or [])))}[/dim]",
                  highlight=False, soft_wrap=True)  # a path is never broken


def report_written_line(report_dir: Any, findings: int) -> str:
    """The run's last line: where its report is (the HTML page when there is one) and how many findings."""
    import os

    html = os.path.join(os.fspath(report_dir), "report.html")
    where = html if os.path.exists(html) else os.path.join(os.fspath(report_dir), "report.json")
    return terminal_safe(f"watchdog: report written to {where} ({findings} finding{'' if findings == 1 else 's'})")
