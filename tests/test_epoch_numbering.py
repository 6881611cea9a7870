"""One epoch numbering everywhere: the user's own (``for epoch in range(n)``, from 0) (issue 13 item 2)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_an_overlap_found_in_the_users_epoch_0_says_epoch_0_in_json_html_and_dashboard(tmp_path):
    report_dir = tmp_path / "wd"
    proc = subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", str(report_dir),
                           str(ROOT / "examples" / "overlap_bug.py")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 0: val_loss=" in proc.stdout  # the user's loop prints epoch 0 for its first epoch
    report = json.loads((report_dir / "report.json").read_text())
    [overlap] = [f for f in report["findings"] if f["code"] == "overlap/train-eval"]
    assert overlap["epoch"] == 0  # found by the first evaluation, after the first epoch's training
    from watchdog.report.fold import RunView
    from watchdog.report.panels import DashboardRenderable
    from rich.console import Console

    view = RunView.from_log(report_dir / "events.jsonl")
    [finding] = [f for f in view.findings.values() if f.code == "overlap/train-eval"]
    assert finding.epoch == 0
    console = Console(width=120, height=40, record=True, file=open("/dev/null", "w"), color_system=None)  # the full dashboard
    console.print(DashboardRenderable(view))
    row = next(line for line in console.export_text().splitlines() if "overlap/train-eval" in line
               and "ep " in line)
    assert "ep 0 " in row, row
