"""`watchdog report DIR`: re-render report.json, the terminal summary and the HTML report from
DIR/events.jsonl.

Works for finished runs and for runs that died (no `run_end`, a torn last line): the event log is
flushed as the run goes, so it is the evidence that survives. The terminal summary is the
foundation's (`report/terminal.py`), the HTML is `report/html.py`, both from the same log.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 2


def render_report(directory: str | Path, *, console: Any = None) -> int:
    """Re-render DIR's reports from DIR/events.jsonl. Returns the exit status (0 ok, 2 no usable log)."""
    from ..core.events import EVENT_LOG_NAME, read_events
    from .html import write_html_report
    from .jsonreport import build_report, write_report_json
    from .terminal import print_summary
    from ..core.format import terminal_safe

    d = Path(directory)
    log = d / EVENT_LOG_NAME
    if not log.is_file():
        print(f"watchdog report: no event log at {str(log)!r}. Give the directory a watched run wrote "
              f"(it holds {EVENT_LOG_NAME}), e.g. watchdog report watchdog-report", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = build_report(read_events(log))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"watchdog report: cannot read {str(log)!r}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        write_report_json(d, report)
        html_path = write_html_report(d, report)
    except OSError as exc:
        print(f"watchdog report: cannot write into {str(d)!r}: {exc.strerror or exc}. "
              "Make the directory writable, or copy it somewhere that is.", file=sys.stderr)
        return EXIT_USAGE
    print_summary(report, d, console=console)
    from rich.console import Console
    from rich.markup import escape

    (console or Console(stderr=True)).print(f"[dim]watchdog: HTML report written to {escape(terminal_safe(html_path))}[/dim]")
    return EXIT_OK
