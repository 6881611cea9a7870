"""Issue 13, item 4: how the script ended and what watchdog found are two things, said apart; a
run with error findings never shows a green OK (terminal headline, HTML status tile, dashboard)."""
from __future__ import annotations

import io
import json
import re

from rich.console import Console

import watchdog
from tests.loops import fit, loader, make_dataset, make_model
from watchdog.core.format import run_headline
from watchdog.report.fold import RunView
from watchdog.report.markup import SEV_COLOR
from watchdog.report.panels import DashboardRenderable
from watchdog.report.terminal import print_summary


def run_with_an_error_finding(report_dir):
    """A real run that validates on its training loader: an overlap/same-loader error."""
    train_loader = loader(make_dataset(96), shuffle=True)
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False) as run:
        fit(make_model(), train_loader, train_loader, epochs=1)
    assert run.status == "ok" and any(f.severity == "error" for f in run.findings)
    return run


def clean_run(report_dir):
    ds = make_dataset(96)
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False) as run:
        fit(make_model(), loader(ds), None, epochs=1)
    return run


def run_tile(html: str) -> re.Match:
    match = re.search(r'<div class="k">run</div><div class="v"><span class="run-headline" '
                      r'data-severity="(\w+)" style="color:([^"]+)">([^<]*)</span>', html)
    assert match, "the HTML summary has a run tile"
    return match


def terminal_summary(report_dir, color: bool = False) -> str:
    report = json.loads((report_dir / "report.json").read_text())
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=color, color_system="truecolor" if color else None)
    print_summary(report, report_dir, console=console)
    return out.getvalue()


def test_a_completed_run_with_an_error_reads_completed_and_red_everywhere(report_dir):
    run_with_an_error_finding(report_dir)
    report = json.loads((report_dir / "report.json").read_text())
    assert report["run"]["status"] == "ok"  # report.json keeps the log's word: the script exited normally

    severity, color, text = run_tile((report_dir / "report.html").read_text()).groups()
    assert (severity, color) == ("error", SEV_COLOR["error"])
    assert text.startswith("completed · 1 error ") and "ok" not in text.lower().split()
    assert 'class="sev sev-ok"' not in (report_dir / "report.html").read_text().split('id="checks"')[0]

    first = terminal_summary(report_dir).splitlines()[0]
    assert first.startswith("watchdog: run completed · 1 error · 0 warnings")
    assert "run ok" not in first and "error(s)" not in first
    colored = terminal_summary(report_dir, color=True).splitlines()[0]
    assert "\x1b[1;31m" in colored and "\x1b[1;32m" not in colored  # bold red, never bold green

    view = RunView.from_log(report_dir / "events.jsonl")
    console = Console(width=120, file=io.StringIO(), color_system=None, record=True)
    console.print(DashboardRenderable(view))
    title = console.export_text().splitlines()[0]
    assert "watchdog · run completed · 1 error · 0 warnings" in title and "· ok" not in title


def test_a_clean_completed_run_is_green(report_dir):
    clean_run(report_dir)
    severity, color, text = run_tile((report_dir / "report.html").read_text()).groups()
    assert (severity, color, text) == ("ok", SEV_COLOR["ok"], "completed · no findings")
    assert terminal_summary(report_dir).startswith("watchdog: run completed · no findings — 1 epoch, 3 optimizer steps")


def test_an_exception_is_red_even_without_findings(report_dir):
    try:
        with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False):
            raise RuntimeError("the user's bug")
    except RuntimeError:
        pass
    severity, _, text = run_tile((report_dir / "report.html").read_text()).groups()
    assert (severity, text) == ("error", "ended by an exception · no findings")


def test_the_headline_says_the_ending_and_the_findings_apart():
    assert run_headline("ok", {"error": 3, "warning": 0, "info": 0}) == (
        "run completed · 3 errors · 0 warnings · 0 info", "error")
    assert run_headline("ok", {"info": 1}) == ("run completed · 0 errors · 0 warnings · 1 info", "info")
    assert run_headline("interrupted", {}) == ("run interrupted (Ctrl-C) · no findings", "warning")
    assert run_headline("exit", {"warning": 1})[1] == "error"
    assert run_headline("running", {"warning": 2}) == ("run in progress · 0 errors · 2 warnings · 0 info", "warning")
