"""The end-of-run reports: ``report.json``, ``report.html`` and the terminal summary.

The run hands over the events it kept (``build_report`` folds them); the HTML is rendered from the
event log, as ``watchdog report DIR`` does, or, for a stream no log holds (a multi-process run's
merged events: ``from_log=False``), from the events themselves. Each report is written on its own:
one that fails is said on stderr and the others are still written.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable

from ..core.format import report_written_line, terminal_safe
from ..core.gcpause import gc_paused


def _say(message: str) -> None:
    try:
        if sys.stderr is not None:
            sys.stderr.write(terminal_safe(message) + "\n")
    except Exception:
        pass


def write_reports(report_dir: Path, events: Iterable[Any], *, lost_lines: int = 0, summary: bool | str = True,
                  archived_to: Path | None = None, from_log: bool = True) -> dict[str, Any]:
    """Write DIR/report.json and DIR/report.html, then print the summary; returns the report.

    ``summary``: True prints the summary, ``"line"`` only its last line (where the report is), False
    nothing. ``from_log``: the HTML and the summary's view from DIR/events.jsonl (a run's own log),
    else from ``events``.
    """
    # The cyclic garbage collector is paused while the reports are built (as during a census): its
    # full collections walk every object the growing report holds, which made writing the report of
    # a 10,000-epoch run take 2-3x as long as the work itself (superlinear in the run's length).
    with gc_paused():
        return _write_reports(report_dir, events, lost_lines=lost_lines, summary=summary, archived_to=archived_to,
                              from_log=from_log)


def _write_reports(report_dir: Path, events: Iterable[Any], *, lost_lines: int, summary: bool | str,
                   archived_to: Path | None, from_log: bool) -> dict[str, Any]:
    from .fold import RunView
    from .html import log_view, write_html
    from .jsonreport import build_report, write_report_json

    events = list(events)
    report = build_report(events)
    if lost_lines:
        report["run"]["event_log_lost_lines"] = lost_lines
    write_report_json(report_dir, report)  # the contract: its failure is the run's to report
    view = None
    try:
        view = log_view(report_dir) if from_log else RunView.from_events(events)
        write_html(view, report_dir)
    except Exception as exc:
        _say(f"watchdog: the HTML report could not be written ({type(exc).__name__}: {exc})")
    if summary:
        try:
            if summary == "line":
                _say(report_written_line(report_dir, len(report.get("findings") or [])))
            else:
                from .terminal import print_summary

                print_summary(report, report_dir, archived_to=archived_to, view=view)
        except Exception:
            pass  # stderr closed or on a full disk: the report files are written, nothing to say it on
    return report
