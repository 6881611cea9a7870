"""Report files are never written through links planted in the report directory, and names from
the user's program never reach the terminal with raw control characters (issue 9)."""

from __future__ import annotations

import io
import json
import os

import pytest
from rich.console import Console

from tests.fixtures import fixture_events, replace_text
import watchdog
from tests.loops import loader, make_dataset, make_model, train_epoch
from watchdog.core.check import Check
from watchdog.core.events import Event
from watchdog.report.jsonreport import build_report
from watchdog.report.panels import DashboardRenderable, epoch_line
from watchdog.report.terminal import print_summary
from watchdog.report.fold import RunView

# Set the terminal's title, clear the screen, ring the bell, return to the line start, reverse text.
CONTROL = "\x1b]0;pwned\x07\x1b[2J\r\u202e"
RAW = ("\x1b", "\x07", "\r", "\u202e")


def quiet_run(report_dir):
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False) as run:
        pass
    return run


def test_a_planted_tmp_link_is_not_followed(report_dir, tmp_path):
    report_dir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("report.json.tmp", ".report.json.tmp", "report.json"):
        (report_dir / name).unlink(missing_ok=True)
    os.symlink(victim, report_dir / "report.json.tmp")
    quiet_run(report_dir)
    assert victim.read_text() == "precious"
    assert not (report_dir / "report.json").is_symlink()
    assert json.loads((report_dir / "report.json").read_text())["run"]["status"] == "ok"
    # a link planted at the final names is replaced (and archived away), never written through
    os.symlink(victim, report_dir / "report.html.tmp")
    quiet_run(report_dir)
    assert victim.read_text() == "precious"
    assert not (report_dir / "report.html").is_symlink()


def test_a_planted_previous_link_is_not_followed(report_dir, tmp_path, capsys):
    quiet_run(report_dir)  # an earlier report, to be archived by the next run
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, report_dir / "previous")
    run = quiet_run(report_dir)
    assert run.status == "unwatched" and list(elsewhere.iterdir()) == []
    assert "is a link" in capsys.readouterr().err


def test_a_run_id_from_an_old_log_cannot_leave_previous(report_dir, tmp_path):
    report_dir.mkdir()
    (report_dir / "events.jsonl").write_text(json.dumps(
        {"kind": "run_start", "t": 0, "data": {"run_id": "../../escaped"}}) + "\n")
    quiet_run(report_dir)
    assert not (tmp_path / "escaped").exists()
    [archived] = (report_dir / "previous").iterdir()
    assert (archived / "events.jsonl").exists()


@pytest.fixture
def hostile_events():
    """A real run's log (examples/overlap_bug.py) whose loader names carry control characters."""
    events = fixture_events("overlap_bug")
    assert replace_text(events, "val_loader", "val_loader" + CONTROL) > 0
    return events


def plain_console():
    return Console(file=io.StringIO(), width=200, color_system=None, force_terminal=False)


def assert_escaped(text):
    assert not any(raw in text for raw in RAW), repr(text)
    assert "\\x1b" in text


def test_the_dashboard_escapes_control_characters(hostile_events):
    running = [e for e in hostile_events if e["kind"] != "run_end"]
    view = RunView.from_events(running)
    view.current_loader, view.current_batches = "val" + CONTROL, 3
    console = plain_console()
    console.print(DashboardRenderable(view))
    assert_escaped(console.file.getvalue())
    assert not any(raw in epoch_line(view) for raw in RAW)


def test_the_terminal_summary_escapes_control_characters(hostile_events):
    report = build_report(Event(e["kind"], e["data"], None, e["t"]) for e in hostile_events)
    console = plain_console()
    print_summary(report, "wd" + CONTROL, archived_to="wd/previous" + CONTROL, console=console)
    assert_escaped(console.file.getvalue())
    assert "\\u202e" in console.file.getvalue()


class HostileErrorCheck(Check):
    name = "hostile"

    def on_loader_pass_end(self, event):
        raise ValueError("no such loader: " + CONTROL)


def test_an_exception_message_reaches_the_terminal_escaped(report_dir, monkeypatch, capsys):
    from watchdog.core import registry

    checks = registry.all_checks()
    monkeypatch.setattr(registry, "all_checks", lambda: [HostileErrorCheck, *checks])
    with watchdog.watch(report_dir=report_dir, dashboard=False):
        model = make_model()
        train_epoch(model, loader(make_dataset(64)), __import__("torch").optim.SGD(model.parameters(), lr=0.1))
    err = capsys.readouterr().err
    assert "no such loader" in err
    assert_escaped(err)
    # the report file keeps the exact text (JSON escapes it itself)
    [internal] = [f for f in json.loads((report_dir / "report.json").read_text())["findings"]
                  if f["code"] == "watchdog/internal-error"]
    assert CONTROL in internal["message"]
