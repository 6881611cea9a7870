"""DIR/previous/ is bounded: each run archives the earlier report, the oldest beyond
KEEP_PREVIOUS_RUNS are removed, and nothing watchdog did not archive is ever touched."""

from __future__ import annotations

import json
import os

import pytest

import watchdog
from watchdog.core.run import KEEP_PREVIOUS_RUNS
from tests.loops import fit, loader, make_dataset, make_model


@watchdog.watch(dashboard=False, summary=False)
def _decorated_fit():
    fit(make_model(), loader(make_dataset(32)), None, epochs=1)


def _started_at(report_json):
    return json.loads(report_json.read_text())["run"]["started_at"]


def test_each_decorated_call_archives_but_only_the_newest_are_kept(report_dir, monkeypatch):
    monkeypatch.setenv("WATCHDOG_REPORT_DIR", str(report_dir))
    previous = report_dir / "previous"
    previous.mkdir(parents=True)
    (previous / "notes").mkdir()  # the user's own things in previous/ are never removed
    (previous / "notes" / "todo.txt").write_text("compare with run 3")
    (previous / "my-report.json").write_text("{}")

    started = []
    for _ in range(KEEP_PREVIOUS_RUNS + 3):
        _decorated_fit()
        started.append(_decorated_fit.watchdog_run.start_metadata["started_at"])

    archived = [p for p in previous.iterdir() if p.name not in ("notes", "my-report.json")]
    assert len(archived) == KEEP_PREVIOUS_RUNS
    # The last run's report is in DIR itself; previous/ holds the KEEP_PREVIOUS_RUNS before it.
    assert sorted(_started_at(p / "report.json") for p in archived) == started[-KEEP_PREVIOUS_RUNS - 1:-1]
    assert _started_at(report_dir / "report.json") == started[-1]
    assert (previous / "notes" / "todo.txt").read_text() == "compare with run 3"
    assert (previous / "my-report.json").exists()


@pytest.mark.foreign_report_json  # plants a report.json of its own, outside the report directory
def test_a_link_in_previous_is_never_followed_or_removed(report_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WATCHDOG_REPORT_DIR", str(report_dir))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "report.json").write_text("{}")
    (report_dir / "previous").mkdir(parents=True)
    os.symlink(elsewhere, report_dir / "previous" / "0000-old-link")
    for _ in range(KEEP_PREVIOUS_RUNS + 2):
        _decorated_fit()
    assert (report_dir / "previous" / "0000-old-link").is_symlink()
    assert (elsewhere / "report.json").read_text() == "{}"
