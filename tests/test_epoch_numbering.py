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


def test_a_memory_leak_caught_at_the_end_of_the_users_epoch_3_says_epoch_3_everywhere(tmp_path):
    """One real run of examples/memory_leak.py: the finding's message and stamp, report.json, the
    HTML (passes table, memory chart points) and the dashboard number the epochs as its loop does."""
    import html as html_module
    import os
    import re

    report_dir = tmp_path / "wd"
    env = {**os.environ, "WATCHDOG_MEMORY_CENSUS": "every-epoch"}
    proc = subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", str(report_dir),
                           str(ROOT / "examples" / "memory_leak.py")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    printed = re.findall(r"^epoch (\d+): mean loss", proc.stdout, re.M)
    assert printed == [str(e) for e in range(6)]  # the user's own numbering

    report = json.loads((report_dir / "report.json").read_text())
    [leak] = [f for f in report["findings"] if f["code"] == "memory/tensor-growth"]
    assert leak["epoch"] == 3  # caught at the end of the user's epoch 3 (the fourth sample)
    # the message: growth from the first sample (the end of epoch 0), the run's last epoch is 5
    assert "since epoch 0:" in leak["message"]
    events = [json.loads(line) for line in (report_dir / "events.jsonl").read_text().splitlines()]
    first = next(e["data"] for e in events if e["kind"] == "finding" and e["data"]["code"] == "memory/tensor-growth")
    assert first["epoch"] == 3 and "by the end of the run's last epoch (epoch 5," in first["message"]
    now = int(re.search(r"\(now ([\d,]+) tensors", first["message"]).group(1).replace(",", ""))
    sample = next(e["data"] for e in events if e["kind"] == "memory_sample"
                  and e["data"].get("at") == "epoch_end" and e["data"].get("epoch") == 4)  # 4 epochs completed
    assert now == sample["census"]["count"]

    page = (report_dir / "report.html").read_text()
    # the memory chart's point for the end of epoch 3 shows the count the finding quotes
    chart = re.search(r'data-source="tensors">(.*?)</svg>', page, re.S).group(1)
    titles = [html_module.unescape(t) for t in re.findall(r"<circle [^>]*><title>(.*?)</title>", chart)]
    assert titles[0].startswith("epoch 0: ") and titles[-1].startswith("epoch 5: ") and len(titles) == 6
    assert f"epoch 3: {now}" in titles
    # its marks: the growth's baseline (the end of epoch 0) and where the finding fired (epoch 3), as
    # report.json's evidence and stamp say
    assert (leak["evidence"]["baseline_epoch"], leak["epoch"]) == (0, 3)
    marks = [html_module.unescape(t) for t in re.findall(r'<line class="mark-\w+"[^>]*><title>(.*?)</title>', chart)]
    assert marks == ["memory/tensor-growth: growth measured from the end of epoch 0 (the rule's baseline)",
                     "memory/tensor-growth found at the end of epoch 3"]
    # the passes table: the six training passes are epochs 0-5
    passes = re.search(r'<section id="passes">(.*?)</section>', page, re.S).group(1)
    assert re.findall(r'<tr><td class="num">(\d+)</td>', passes) == [str(e) for e in range(6)]
    assert "epoch 3" in page[page.index("memory/tensor-growth"):][:4000]  # the finding's card

    from rich.console import Console

    from watchdog.report.fold import RunView
    from watchdog.report.panels import DashboardRenderable, epoch_line

    view = RunView.from_log(report_dir / "events.jsonl")
    console = Console(width=120, height=40, record=True, file=open("/dev/null", "w"), color_system=None)
    console.print(DashboardRenderable(view))
    text = console.export_text()
    assert "epochs done 6" in text  # a count: six epochs, numbered 0-5
    row = next(line for line in text.splitlines() if "memory/tensor-growth" in line and "ep " in line)
    assert "ep 3 " in row and "since epoch 0" in row, row
    assert epoch_line(view).startswith("[watchdog] epoch 5 ended · epochs done 6 ·")
