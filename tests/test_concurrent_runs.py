"""Two runs in one report directory at once each keep their report (issue 9).

The first run holds DIR's lock; a second one, started while the first is alive, writes to
DIR/run-<its id>/ and says so; a lock left by a dead process is taken over.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import watchdog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}

RUN = textwrap.dedent("""
    import os, sys, time
    import torch
    import watchdog
    from tests.loops import loader, make_dataset, make_model, train_epoch
    report_dir, release = sys.argv[1], sys.argv[2]
    model = make_model()
    with watchdog.watch(report_dir=report_dir, dashboard=False) as run:
        train_epoch(model, loader(make_dataset(64)), torch.optim.SGD(model.parameters(), lr=0.1))
        print("RUNNING", run.run_id, run.report_dir, flush=True)
        deadline = time.monotonic() + 60
        while release != "-" and not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.05)
""")


def test_a_second_run_in_a_live_runs_directory_writes_its_own_subdirectory(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(RUN)
    wd, release = tmp_path / "wd", tmp_path / "release"
    first = subprocess.Popen([sys.executable, str(script), str(wd), str(release)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path)
    try:
        _, first_id, first_dir = first.stdout.readline().split()
        assert first_dir == str(wd)
        second = subprocess.run([sys.executable, str(script), str(wd), "-"], capture_output=True, text=True,
                                env=ENV, cwd=tmp_path, timeout=120)
    finally:
        release.write_text("")
        first_out, first_err = first.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, (first_err, second.stderr)
    _, second_id, second_dir = second.stdout.split()
    assert second_dir == str(wd / f"run-{second_id}")
    assert f"in use by a running watchdog run (pid {first.pid})" in second.stderr
    assert f"run-{second_id}" in second.stderr
    # Each run's report is complete, in its own place; nothing was archived from under the live run.
    first_report = json.loads((wd / "report.json").read_text())
    assert first_report["run"]["run_id"] == first_id and first_report["run"]["status"] == "ok"
    second_report = json.loads((wd / f"run-{second_id}" / "report.json").read_text())
    assert second_report["run"]["run_id"] == second_id and second_report["run"]["status"] == "ok"
    assert second_report["run"]["shared_report_dir"] == {
        "dir": str(wd), "held_by_pid": first.pid, "report_dir": str(wd / f"run-{second_id}")}
    assert not (wd / "previous").exists()
    # Both ended: the next run owns DIR again, and archives the first run's report as usual.
    third = subprocess.run([sys.executable, str(script), str(wd), "-"], capture_output=True, text=True,
                           env=ENV, cwd=tmp_path, timeout=120)
    assert third.returncode == 0 and third.stdout.split()[2] == str(wd), third.stderr
    assert json.loads((wd / "previous" / first_id / "report.json").read_text())["run"]["run_id"] == first_id


def test_the_lock_of_a_dead_run_is_taken_over(report_dir):
    report_dir.mkdir()
    (report_dir / ".watchdog.lock").write_text("999999999\n")  # a run that was SIGKILLed
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False) as run:
        assert (report_dir / ".watchdog.lock").read_text() == f"{os.getpid()}\n"
    assert run.report_dir == report_dir and run.shared_report_dir is None
    assert (report_dir / "report.json").exists()
