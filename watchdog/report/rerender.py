"""`watchdog report DIR`: re-render report.json, the terminal summary and the HTML report from
DIR/events.jsonl.

Works for finished runs and for runs that died (no `run_end`, a torn last line): the event log is
flushed as the run goes, so it is the evidence that survives. The terminal summary is the
foundation's (`report/terminal.py`), the HTML is `report/html.py`, both from the same log.

It never destroys evidence: it counts the lines it could not read and says how much of the log it
read; it refuses (exit status 2, the files left as they are) to replace a report with one built from
nothing (an unreadable or empty log, or one without its `run_start`), or with one that drops findings
or epochs the existing `report.json` of the same run holds (a run whose log lost lines on a full disk
wrote its report.json from memory).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 2


@dataclass
class LogReading:
    """What `watchdog report` could read of an event log."""

    events: list[Any] = field(default_factory=list)
    unreadable: int = 0

    @property
    def lines(self) -> int:
        """Non-blank lines in the log: the events read plus the lines that were not."""
        return len(self.events) + self.unreadable

    def describe(self) -> str:
        if not self.unreadable:
            return f"read all {self.lines:,} lines"
        return f"read {len(self.events):,} of {self.lines:,} lines; {self.unreadable:,} unreadable"


def read_log(log: Path) -> LogReading:
    """Every readable event of ``log``, counting the lines that are not events. Raises OSError."""
    from ..core.events import read_events

    reading = LogReading()

    def count_unreadable() -> None:
        reading.unreadable += 1

    reading.events = list(read_events(log, on_bad_line=count_unreadable))
    return reading


def _refuse(log: Path, why: str) -> int:
    print(f"watchdog report: not re-rendering from {str(log)!r}: {why}. report.json and report.html in "
          f"{str(log.parent)!r} are left as they are.", file=sys.stderr)
    return EXIT_USAGE


def findings_lost(existing: dict[str, Any], rebuilt: dict[str, Any]) -> str | None:
    """The findings (by code and key) ``existing`` holds and ``rebuilt`` does not, in words
    (``2 finding(s) (eval/never, overlap/train-eval)``), or None."""

    def identities(report: dict[str, Any]) -> set[tuple[Any, Any]]:
        return {(f.get("code"), f.get("key")) for f in report.get("findings") or [] if isinstance(f, dict)}

    missing = identities(existing) - identities(rebuilt)
    if not missing:
        return None
    return f"{len(missing)} finding(s) ({', '.join(sorted(str(code) for code, _ in missing))})"


def _dropped_evidence(existing_path: Path, rebuilt: dict[str, Any]) -> str | None:
    """Why replacing ``existing_path`` (report.json) with ``rebuilt`` would lose evidence, if it would."""
    try:
        existing = json.loads(existing_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # nothing readable to lose
    if not isinstance(existing, dict) or not isinstance(existing.get("run"), dict):
        return None
    if existing["run"].get("run_id") != rebuilt["run"].get("run_id"):
        return None  # another run's report: the log is this directory's evidence

    missing = findings_lost(existing, rebuilt)
    if missing:
        return f"the existing report.json of this run holds {missing} the log does not; the log lost lines while the run wrote it"
    old_epochs, new_epochs = len(existing.get("epochs") or []), len(rebuilt.get("epochs") or [])
    if old_epochs > new_epochs:
        return (f"the existing report.json of this run records {old_epochs} epochs, the log only "
                f"{new_epochs}; the log lost lines while the run wrote it")
    return None


def render_report(directory: str | Path, *, console: Any = None) -> int:
    """Re-render DIR's reports from DIR/events.jsonl. Returns the exit status (0 ok, 2 no usable log)."""
    from ..core.events import EVENT_LOG_NAME

    d = Path(directory)
    log = d / EVENT_LOG_NAME
    if not log.is_file():
        print(f"watchdog report: no event log at {str(log)!r}. Give the directory a watched run wrote "
              f"(it holds {EVENT_LOG_NAME}), e.g. watchdog report watchdog-report", file=sys.stderr)
        return EXIT_USAGE
    try:
        reading = read_log(log)
    except OSError as exc:
        return _refuse(log, f"cannot read it ({exc.strerror or exc})")
    if reading.lines == 0:
        return _refuse(log, "it is empty (the run wrote no event, or the file was truncated)")
    if not any(event.kind == "run_start" for event in reading.events):
        return _refuse(log, f"it has no run_start event ({reading.describe()}): it is not a watchdog event "
                            "log, or its beginning was lost")

    from .html import log_view, write_html
    from .jsonreport import build_report, write_report_json
    from .terminal import print_summary
    from ..core.format import terminal_safe

    report = build_report(reading.events)
    if reading.unreadable:
        report["run"]["event_log_unreadable_lines"] = reading.unreadable
    dropped = _dropped_evidence(d / "report.json", report)
    if dropped is not None:
        return _refuse(log, dropped)
    try:
        write_report_json(d, report)
        view = log_view(d)
        write_html(view, d)
    except OSError as exc:
        print(f"watchdog report: cannot write into {str(d)!r}: {exc.strerror or exc}. "
              "Make the directory writable, or copy it somewhere that is.", file=sys.stderr)
        return EXIT_USAGE
    from rich.console import Console
    from rich.markup import escape

    out = console or Console(stderr=True)
    out.print(f"[dim]watchdog report: {escape(reading.describe())} of {escape(terminal_safe(log))}[/dim]",
              highlight=False, soft_wrap=True)
    print_summary(report, d, console=out, view=view)
    return EXIT_OK
