"""`watchdog report DIR`: re-render the terminal summary and the HTML report from an event log.

Works for finished runs and for runs that died (no `run_end`, a truncated last line): the event
log is flushed as the run goes, so it is the evidence that survives.
"""
from __future__ import annotations

import pathlib
import sys
from typing import Any

from .html import write_html
from .view import RunView

EVENTS_FILE = "events.jsonl"


def render_report(directory: str | pathlib.Path, *, html: bool = True, console: Any = None) -> int:
    """Re-render DIR's report from DIR/events.jsonl. Returns a process exit code (0 ok, 2 no log)."""
    d = pathlib.Path(directory)
    log = d / EVENTS_FILE if d.is_dir() else d
    if d.is_file() and d.name == EVENTS_FILE:
        d = d.parent
    if not log.is_file():
        print(f"watchdog report: no event log at {log}. Pass the report directory of a watched run "
              f"(the one holding {EVENTS_FILE}; see `--report-dir`).", file=sys.stderr)
        return 2
    try:
        view = RunView.from_log(log)
    except OSError as exc:
        print(f"watchdog report: cannot read {log}: {exc}", file=sys.stderr)
        return 2
    if view.events_seen == 0:
        print(f"watchdog report: {log} holds no readable events.", file=sys.stderr)
        return 2
    print_summary(view, console=console)
    if html:
        try:
            path = write_html(view, d)
        except OSError as exc:
            print(f"watchdog report: cannot write the HTML report into {d}: {exc}", file=sys.stderr)
            return 2
        _console(console).print(f"HTML report: {path}", markup=False, highlight=False)
    return 0


def print_summary(view: RunView, console: Any = None) -> None:
    """The end-of-run terminal summary, rendered from the view's findings."""
    from . import terminal

    c = _console(console)
    findings = [_finding_dict(f) for f in view.findings_sorted()]
    terminal.print_summary(findings, console=c, status=view.status, epochs=view.epochs, steps=view.steps)


def _finding_dict(f) -> dict[str, Any]:
    return {"code": f.code, "severity": f.severity, "message": f.message, "fix": f.fix,
            "evidence": f.evidence, "where": f.where, "epoch": f.epoch, "step": f.step,
            "time": f.time, "key": f.key}


def _console(console: Any):
    if console is not None:
        return console
    from rich.console import Console

    return Console()
