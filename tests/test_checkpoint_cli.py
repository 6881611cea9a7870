"""Issue 3 end to end: the seed's checkpoint pair under `python -m watchdog run`, report.json as the contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}
SCRIPT = os.path.join(ROOT, "examples", "checkpoint_seed.py")


def run_cli(tmp_path, name, *args):
    report = tmp_path / name
    proc = subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", str(report), "--quiet",
                           SCRIPT, *args], cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    findings = json.loads((report / "report.json").read_text())["findings"]
    return proc, {f["code"]: f for f in findings if f["code"].startswith(("checkpoint/", "resume/", "watchdog/"))}


def test_seed_pair_under_the_cli(tmp_path):
    ckpt = str(tmp_path / "seed.pt")
    _, saved = run_cli(tmp_path, "save", "save", ckpt)
    assert sorted(saved) == ["checkpoint/missing-optimizer-state", "checkpoint/missing-scheduler-state"]
    assert "Adam moments for 4 parameter tensors" in saved["checkpoint/missing-optimizer-state"]["message"]
    _, resumed = run_cli(tmp_path, "resume", "resume", ckpt)
    assert sorted(resumed) == ["checkpoint/missing-optimizer-state", "checkpoint/missing-scheduler-state",
                               "resume/optimizer-state-absent", "resume/scheduler-restarted"]
    restarted = resumed["resume/scheduler-restarted"]
    assert restarted["severity"] == "error" and "the LR should be" in restarted["message"]
    assert restarted["evidence"]["expected_last_epoch"] == 2
