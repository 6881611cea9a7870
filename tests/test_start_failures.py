"""When watchdog cannot start, the training still runs, unwatched, with one clear message (issue 9).

Triggers: a deleted working directory, a ``pathlib.Path`` in ``sys.argv``, ``DIR/previous`` being a
file, an event log that cannot be opened (too many open files), a read-only report directory. A
failed start leaks no file handle, archives nothing and writes no empty report.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest
import torch

import watchdog
from tests.loops import loader, make_dataset, make_model, train_epoch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


def train(report_dir, **options):
    """A decorated training function; returns (its result, the run)."""

    @watchdog.watch(report_dir=report_dir, summary=False, dashboard=False, **options)
    def fit():
        model = make_model()
        train_epoch(model, loader(make_dataset(64)), torch.optim.SGD(model.parameters(), lr=0.1))
        return "trained"

    return fit(), fit.watchdog_run


def earlier_report(report_dir):
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False) as run:
        pass
    return run, (report_dir / "report.json").read_text(), (report_dir / "events.jsonl").read_text()


def one_message(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "not watching this run" in lines[0] and "unwatched" in lines[0]
    return lines[0]


def assert_untouched(report_dir, report_text, log_text):
    assert (report_dir / "report.json").read_text() == report_text
    assert (report_dir / "events.jsonl").read_text() == log_text
    assert not (report_dir / "previous").is_dir() or not any((report_dir / "previous").iterdir())
    assert not [p for p in report_dir.iterdir() if p.name.endswith(".tmp")]


def test_previous_being_a_file_runs_the_training_unwatched(report_dir, capsys):
    _, report_text, log_text = earlier_report(report_dir)
    (report_dir / "previous").write_text("a file the user put here")
    fds = open_fds()
    result, run = train(report_dir)
    assert result == "trained" and run.status == "unwatched" and run.findings == []
    assert open_fds() == fds  # the event log's handle is closed on the failure path
    assert "previous" in one_message(capsys.readouterr().err)
    assert_untouched(report_dir, report_text, log_text)


def test_a_read_only_report_directory_runs_the_training_unwatched(report_dir, monkeypatch, capsys):
    _, report_text, log_text = earlier_report(report_dir)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if pathlib.Path(path) == report_dir
                        else real_access(path, mode, **kw))  # root ignores chmod: say it as the OS would
    result, run = train(report_dir)
    assert result == "trained" and run.status == "unwatched"
    assert str(report_dir) in one_message(capsys.readouterr().err)
    assert_untouched(report_dir, report_text, log_text)


@pytest.mark.foreign_report_json  # plants a report.json of its own
def test_a_with_block_gets_an_unwatched_run_when_the_start_fails(report_dir, capsys):
    report_dir.mkdir()
    (report_dir / "previous").write_text("")
    (report_dir / "report.json").write_text("{}")
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        ran = True
    assert ran and run.status == "unwatched" and watchdog.current_run() is None
    one_message(capsys.readouterr().err)
    with watchdog.watch(report_dir=report_dir / "next", summary=False) as later:  # nothing left behind
        pass
    assert later.status == "ok"


def test_a_path_in_argv_is_recorded_as_text(report_dir, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py", pathlib.Path("configs/base.yaml"), "--token", pathlib.Path("x")])
    result, run = train(report_dir)
    assert result == "trained" and run.status == "ok"
    argv = json.loads((report_dir / "report.json").read_text())["run"]["argv"]
    assert argv == ["train.py", "configs/base.yaml", "--token", "<redacted>"]


def test_a_deleted_working_directory(tmp_path, capsys):
    gone = tmp_path / "gone"
    gone.mkdir()
    cwd = os.getcwd()
    os.chdir(gone)
    try:
        gone.rmdir()
        # An absolute report directory still works: the report says the working directory is unknown.
        result, run = train(tmp_path / "wd")
        assert result == "trained" and run.status == "ok"
        assert json.loads((tmp_path / "wd" / "report.json").read_text())["run"]["cwd"] is None
        # The default one is relative to the deleted directory: unwatched, one message.
        result, run = train(None)
        assert result == "trained" and run.status == "unwatched"
    finally:
        os.chdir(cwd)
    one_message(capsys.readouterr().err)


TOO_MANY_FILES = textwrap.dedent("""
    import os, resource, sys
    import torch
    import watchdog
    from tests.loops import loader, make_dataset, make_model, train_epoch
    report_dir = sys.argv[1]
    model = make_model()
    data = loader(make_dataset(64))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    import watchdog.core.registry, watchdog.report.jsonreport, watchdog.report.dashboard  # imported up front
    watchdog.watch  # `import watchdog` loads the session on first use: load it before the limit too
    watchdog.core.registry.all_probes()
    train_epoch(model, data, optimizer)  # torch's own lazy imports happen before the limit
    os.makedirs(report_dir)
    before = sorted(os.listdir("/proc/self/fd"))
    lowest_free = os.dup(0)  # the fd the next open() would get: from here on, none is allowed
    os.close(lowest_free)
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, limits[1]))

    @watchdog.watch(report_dir=report_dir, summary=False, dashboard=False)
    def fit():
        train_epoch(model, data, optimizer)
        return "trained"

    result = fit()
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)
    print(result, fit.watchdog_run.status, sorted(os.listdir("/proc/self/fd")) == before)
""")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_an_event_log_that_cannot_be_opened_too_many_open_files(tmp_path):
    script = tmp_path / "fds.py"
    script.write_text(TOO_MANY_FILES)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "wd")], capture_output=True, text=True,
                          env=ENV, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["trained", "unwatched", "True"]
    assert "open files" in one_message(proc.stderr)
    assert list((tmp_path / "wd").iterdir()) == []


CLI_SCRIPT = "import sys\nprint('trained', sys.argv[1:])\n"


def run_cli(tmp_path, *args, cwd=None):
    script = tmp_path / "train.py"
    script.write_text(CLI_SCRIPT)
    return subprocess.run([sys.executable, "-m", "watchdog", "run", *args, str(script), "--lr", "1"],
                          capture_output=True, text=True, env=ENV, cwd=cwd or tmp_path, timeout=120)


def test_cli_previous_being_a_file_runs_the_script_unwatched(tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "previous").write_text("")
    (wd / "events.jsonl").write_text("")
    proc = run_cli(tmp_path, "--report-dir", str(wd))
    assert proc.returncode == 0 and "trained ['--lr', '1']" in proc.stdout
    one_message(proc.stderr)
    assert sorted(p.name for p in wd.iterdir() if p.name != ".watchdog.lock") == ["events.jsonl", "previous"]
