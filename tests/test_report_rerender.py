"""`watchdog report DIR` never destroys evidence (issue 13, item 1).

It refuses to replace a report with one built from nothing (an unreadable, empty or foreign log),
or with one that drops findings the run's own report.json holds, and says how much of the log it
could read.
"""

from __future__ import annotations

import json
import os

import pytest

import watchdog
from tests.loops import fit, loader, make_dataset, make_model
from torch.utils.data import Subset


def _watched_run_with_a_finding(report_dir):
    ds = make_dataset(200)
    with watchdog.watch(report_dir=report_dir, dashboard=False, summary=False) as run:
        fit(make_model(), loader(Subset(ds, range(0, 150))), loader(Subset(ds, range(100, 200))), epochs=2)
    assert any(f.code == "overlap/train-eval" for f in run.findings)
    return run


def _files(report_dir):
    return {name: ((report_dir / name).read_bytes(), (report_dir / name).stat().st_mtime_ns)
            for name in ("report.json", "report.html")}


def _report(argv_dir):
    from watchdog.cli import main

    return main(["report", str(argv_dir)])


@pytest.mark.parametrize("log_text, why", [
    (b"", "it is empty"),
    (b"\x00\xff\xfe garbage \x89PNG\r\n\x1a\n" * 50, "no run_start event"),
    (b'{"kind": "epoch_end", "data": {"epoch": 0}, "t": 1.0}\n', "no run_start event"),
])
def test_a_log_without_a_run_is_refused_and_the_report_kept(tmp_path, capsys, log_text, why):
    report_dir = tmp_path / "wd"
    _watched_run_with_a_finding(report_dir)
    before = _files(report_dir)
    (report_dir / "events.jsonl").write_bytes(log_text)
    capsys.readouterr()

    assert _report(report_dir) == 2
    err = capsys.readouterr().err
    assert why in err and "events.jsonl" in err and "left as they are" in err
    assert "Traceback" not in err
    assert _files(report_dir) == before  # neither rewritten nor touched
    assert json.loads(before["report.json"][0])["summary"]["errors"] >= 1


def test_unreadable_lines_are_counted_and_said(tmp_path, capsys):
    report_dir = tmp_path / "wd"
    _watched_run_with_a_finding(report_dir)
    log = report_dir / "events.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    torn = [lines[0], b"{\"kind\": \"loader_pa\n", *lines[1:-1], b"\xff\xfe not json\n", b"[1, 2]\n", lines[-1],
            b"{\"kind\": \"epoch_e"]
    log.write_bytes(b"".join(torn))
    capsys.readouterr()

    assert _report(report_dir) == 0
    err = capsys.readouterr().err
    total = len(lines) + 4
    assert f"read {len(lines):,} of {total:,} lines; 4 unreadable" in err
    report = json.loads((report_dir / "report.json").read_text())
    assert report["run"]["event_log_unreadable_lines"] == 4
    assert any(f["code"] == "overlap/train-eval" for f in report["findings"])


def test_a_clean_log_says_it_read_every_line(tmp_path, capsys):
    report_dir = tmp_path / "wd"
    _watched_run_with_a_finding(report_dir)
    count = len((report_dir / "events.jsonl").read_bytes().splitlines())
    capsys.readouterr()
    assert _report(report_dir) == 0
    err = capsys.readouterr().err
    assert f"read all {count:,} lines" in err
    assert "event_log_unreadable_lines" not in json.loads((report_dir / "report.json").read_text())["run"]


def test_a_log_that_lost_a_finding_does_not_replace_the_runs_report(tmp_path, capsys):
    """A run whose log lost lines (a full disk) wrote report.json from memory: that is the evidence."""
    report_dir = tmp_path / "wd"
    _watched_run_with_a_finding(report_dir)
    log = report_dir / "events.jsonl"
    kept = [line for line in log.read_text().splitlines(keepends=True)
            if json.loads(line)["kind"] != "finding"]
    log.write_text("".join(kept))
    before = _files(report_dir)
    capsys.readouterr()

    assert _report(report_dir) == 2
    err = capsys.readouterr().err
    assert "overlap/train-eval" in err and "left as they are" in err
    assert _files(report_dir) == before


def test_another_runs_report_is_replaced_from_the_log(tmp_path, capsys):
    report_dir = tmp_path / "wd"
    _watched_run_with_a_finding(report_dir)
    stale = json.loads((report_dir / "report.json").read_text())
    stale["run"]["run_id"] = "another-run"
    stale["findings"].append({"code": "memory/growth", "severity": "warning", "key": None})
    (report_dir / "report.json").write_text(json.dumps(stale))
    assert _report(report_dir) == 0
    report = json.loads((report_dir / "report.json").read_text())
    assert report["run"]["run_id"] != "another-run"
