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


def test_a_run_with_no_epoch_and_no_step_says_why_the_epoch_checks_were_quiet(tmp_path):
    """A loop that updates weights by hand and slices its own batches (pytorch/examples
    word_language_model): the summary says no training loop was seen and how to mark epochs; a run
    with epochs, or one that ended by an exception, does not."""
    import subprocess
    import sys

    script = tmp_path / "by_hand.py"
    script.write_text(
        "import torch\n"
        "w = torch.zeros(4, requires_grad=True)\n"
        "data = torch.randn(64, 4)\n"
        "for epoch in range(2):\n"
        "    for i in range(0, 64, 16):\n"
        "        loss = (data[i:i + 16] @ w - 1).pow(2).mean()\n"
        "        loss.backward()\n"
        "        with torch.no_grad():\n"
        "            w -= 0.1 * w.grad\n"
        "            w.grad = None\n")
    out = subprocess.run([sys.executable, "-m", "watchdog", "run", "--no-dashboard", "--report-dir", "wd", str(script)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no training loop seen" in out.stderr and "watchdog.mark_epoch()" in out.stderr
    text, _ = summary_at(80, "overlap_bug")
    assert "no training loop seen" not in text  # epochs seen
    script.write_text("raise ValueError('before any training')\n")
    out = subprocess.run([sys.executable, "-m", "watchdog", "run", "--no-dashboard", "--report-dir", "wd", str(script)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "no training loop seen" not in out.stderr
