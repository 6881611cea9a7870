"""One failed event-log write does not corrupt the report (issue 9).

The log reopens at the next event, and report.json is built from everything the run saw.
"""

from __future__ import annotations

import errno
import json

import torch

import watchdog
from tests.loops import fit, loader, make_dataset, make_model


class FullDiskOnce:
    """The log's file, except that one write hits a full disk after writing half its line."""

    def __init__(self, file):
        self.file = file
        self.failures = 0

    def write(self, text):
        if self.failures == 0:
            self.failures += 1
            self.file.write(text[: len(text) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.file.write(text)

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()


def test_a_transient_full_disk_loses_one_line_and_no_finding(report_dir):
    ds = make_dataset(128)
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False) as run:
        faulty = FullDiskOnce(run.log._file)
        run.log._file = faulty
        train_loader = loader(ds)
        fit(make_model(), train_loader, train_loader, epochs=2)  # evaluating on the training data: a finding
    assert faulty.failures == 1
    report = json.loads((report_dir / "report.json").read_text())
    assert report["run"]["status"] == "ok" and report["summary"]["epochs"] == 2
    assert report["run"]["event_log_lost_lines"] == 1
    codes = [f["code"] for f in report["findings"]]
    assert sorted(codes) == sorted(f.code for f in run.findings)
    assert "watchdog/event-log-write-failed" in codes and any(c.startswith("overlap/") for c in codes)
    # The log itself recovered: every line after the torn one is readable, the run's end included.
    lines = (report_dir / "events.jsonl").read_text().splitlines()
    kinds = []
    for line in lines:
        try:
            kinds.append(json.loads(line)["kind"])
        except ValueError:
            kinds.append("<torn>")
    assert kinds.count("<torn>") == 1 and kinds[-1] == "run_end"
    assert kinds.index("<torn>") < kinds.index("epoch_end")
    # and `watchdog report DIR` (from the log) still finds a run that ended
    from watchdog.core.events import read_events
    from watchdog.report.jsonreport import build_report

    assert build_report(read_events(report_dir / "events.jsonl"))["run"]["status"] == "ok"
