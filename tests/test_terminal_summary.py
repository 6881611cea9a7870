"""The terminal summary at 80 columns (tmux, a CI log): one block per finding, codes never cut
(issue 13 item 5)."""
from __future__ import annotations

import io

from rich.console import Console

from tests.fixtures import fixture_events
from watchdog.core.events import Event
from watchdog.report.jsonreport import build_report
from watchdog.report.terminal import print_summary


def summary_at(width: int, fixture: str) -> tuple[str, dict]:
    report = build_report(Event(e["kind"], e["data"], None, e["t"]) for e in fixture_events(fixture))
    console = Console(width=width, file=io.StringIO(), color_system=None)
    print_summary(report, "wd", console=console)
    return console.file.getvalue(), report


def test_at_80_columns_each_finding_is_one_block_and_no_code_is_cut():
    text, report = summary_at(80, "checkpoint_seed_resume")
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    for finding in report["findings"]:
        [first] = [line for line in lines if line.startswith(finding["severity"] + "  " + finding["code"])]
        assert finding["code"] in first  # severity and the whole code on one line
        assert finding["fix"].split()[0] in text
    assert len(lines) <= 10 * len(report["findings"]) + 4, len(lines)  # was ~100 lines for 5 findings


def test_wide_and_narrow_summaries_say_the_same_words():
    narrow, _ = summary_at(80, "overlap_bug")
    wide, _ = summary_at(200, "overlap_bug")
    assert narrow.split() == wide.split()  # only the line breaks differ
