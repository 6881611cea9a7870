"""The per-epoch-line display never hangs a run: a stream that fails, or SIGTERM while it prints (issue 9).

Each test runs a real training script under ``python -m watchdog run`` in a subprocess whose stdout
is a pipe (so the dashboard prints one line per epoch on stderr), with a timeout: a hang fails the
test instead of blocking CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}
TIMEOUT = 120

TRAIN = textwrap.dedent("""
    import sys, time
    import torch
    from tests.loops import loader, make_dataset, make_model, train_epoch

    class StuckStream:
        '''A stderr whose epoch line never finishes writing (a blocked pipe, a hung NFS mount).'''
        def write(self, text):
            if text.startswith("[watchdog] epoch"):
                print("WRITING EPOCH LINE", flush=True)
                time.sleep(60)
            return len(text)
        def flush(self):
            pass

    mode = sys.argv[1]
    if mode == "stderr-none":
        sys.stderr = None
    elif mode == "stuck":
        sys.stderr = StuckStream()
    ds = make_dataset(64)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        train_epoch(model, loader(ds), optimizer)
    print("trained", flush=True)
""")


def _watched(tmp_path, mode, shell_redirect="", **popen):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    command = [sys.executable, "-m", "watchdog", "run", "--report-dir", str(tmp_path / "wd"), str(script), mode]
    if shell_redirect:
        command = ["sh", "-c", 'exec "$@" ' + shell_redirect, "sh", *command]
    return subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, text=True, **popen)


def _finish(proc):
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the watched run hung (killed with SIGKILL after the timeout)")
    return out


def _report(tmp_path):
    return json.loads((tmp_path / "wd" / "report.json").read_text())


def _display_disabled(report):
    return [f for f in report["findings"]
            if f["code"] == "watchdog/internal-error" and f["evidence"]["component"] == "dashboard"]


def test_a_failing_epoch_line_switches_the_display_off_and_the_run_finishes(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    with open("/dev/full", "w") as full:
        proc = _watched(tmp_path, "plain", stderr=full)
    out = _finish(proc)
    assert proc.returncode == 0 and "trained" in out
    report = _report(tmp_path)
    assert report["run"]["status"] == "ok" and report["summary"]["epochs"] == 3
    [disabled] = _display_disabled(report)
    assert "switched off" in disabled["message"]


@pytest.mark.parametrize("how", ["stderr-closed", "stdout-and-stderr-closed", "stderr-none"])
def test_a_program_without_stderr_prints_no_lines_and_nothing_failed(tmp_path, how):
    # Started with stderr closed (`2>&-`, a daemon) or set to None, Python has `sys.stderr = None` and
    # its own print() writes nothing: the epoch lines have nowhere to go, which is no dashboard failure.
    if how == "stderr-none":
        proc = _watched(tmp_path, "stderr-none", stderr=subprocess.DEVNULL)
    else:
        proc = _watched(tmp_path, "plain", shell_redirect="2>&-" if how == "stderr-closed" else ">&- 2>&-")
    out = _finish(proc)
    assert proc.returncode == 0 and ("trained" in out) == (how != "stdout-and-stderr-closed")
    report = _report(tmp_path)
    assert report["run"]["status"] == "ok" and report["summary"]["epochs"] == 3
    assert _display_disabled(report) == [] and report["summary"]["warnings"] == 0


def test_sigterm_while_an_epoch_line_is_being_written_ends_the_run_with_its_report(tmp_path):
    proc = _watched(tmp_path, "stuck", stderr=subprocess.DEVNULL)
    try:
        line = proc.stdout.readline()  # the script is now inside the dashboard's event handler
        assert line.strip() == "WRITING EPOCH LINE"
        proc.send_signal(signal.SIGTERM)
    except BaseException:
        proc.kill()
        raise
    _finish(proc)
    assert proc.returncode == -signal.SIGTERM
    report = _report(tmp_path)
    assert report["run"]["status"] == "terminated" and report["summary"]["epochs"] >= 1
