"""End to end (issue 4): the seed's script under `watchdog run`, and strict mode stopping the loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import watchdog
from eval_loops import evaluate, setup, train_one_epoch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "eval_cadence_seed.py"


def watchdog_run(tmp_path, *args, script_args=()):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "watchdog", "run", "--quiet", "--report-dir", str(tmp_path / "wd"),
                          *args, str(SCRIPT), *script_args], capture_output=True, text=True, env=env, timeout=120)
    report = json.loads((tmp_path / "wd" / "report.json").read_text())
    return out, report


@pytest.mark.parametrize("script_args, cli_args, expected", [
    ((), (), [("eval/missing-epochs", "error")]),
    (("--validate-every", "2"), ("--eval-every", "2"), []),
])
def test_seed_script_under_watchdog_run(tmp_path, script_args, cli_args, expected):
    out, report = watchdog_run(tmp_path, *cli_args, script_args=script_args)
    assert out.returncode == 0, out.stderr
    assert [(f["code"], f["severity"]) for f in report["findings"]] == expected
    assert report["run"]["epochs"] == 6


def test_fail_on_error_stops_a_loop_training_in_eval_mode(tmp_path):
    out, report = watchdog_run(tmp_path, "--fail-on", "error",
                               script_args=("--validate-every", "1", "--forget-train"))
    assert out.returncode == 86, out.stderr
    assert [f["code"] for f in report["findings"]] == ["eval/train-in-eval-mode"]
    assert report["run"]["epochs"] == 2  # stopped at the end of the epoch where it was seen
    assert "watchdog stopped the run: eval/train-in-eval-mode" in out.stderr


def test_strict_raises_watchdog_stop_into_the_loop(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with pytest.raises(watchdog.WatchdogStop) as stopped:
        with watchdog.watch(report_dir=tmp_path / "wd", summary=False, strict=True) as run:
            model.train()
            for _ in range(4):
                train_one_epoch(model, train_loader, optimizer, criterion, set_train=False)
                evaluate(model, val_loader, criterion)
    assert stopped.value.finding.code == "eval/train-in-eval-mode"
    assert run.loop.epoch == 2 and run.status == "stopped"
