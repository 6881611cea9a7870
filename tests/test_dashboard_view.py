"""Issue 6: RunView built from events, and the dashboard rendered into a fixed-width console."""
from __future__ import annotations

import io
import json

from rich.console import Console

from _dashboard_events import HOSTILE, sample_events, write_log
from watchdog.report.panels import DashboardRenderable, epoch_line, sparkline
from watchdog.core.format import fmt_bytes
from watchdog.report.fold import RunView


def render_text(view: RunView, width: int = 100) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None, force_terminal=False,
                      record=True, legacy_windows=False)
    console.print(DashboardRenderable(view))
    return console.export_text()


EXPECTED_100 = """\
╭─ watchdog · run r-1234 · ok ─────────────────────────────────────────────────────────────────────╮
│ epoch 6   steps 300   rate 6.2 steps/s   phase done   elapsed 01:07                              │
│                                                                                                  │
│ memory per epoch                             checks                                              │
│ source         chart       last    Δ/epoch   ✖  checkpoint    error  checkpoint/optimizer-missi… │
│ rss_bytes      ▁▂▄▅▇█   291 MiB  +20.0 MiB   ✔  eval-cadence  ok                                 │
│ tensor_bytes   ▁▂▄▅▇█  18.6 MiB   +3.0 MiB   ✔  eval-mode     ok                                 │
│ tensors        ▁▂▄▅▇█     2,120       +400   ▲  memory        warning  memory/growth: list `all… │
│ graph_bytes    ▁▂▄▅▇█   4.8 MiB   +977 KiB   ✖  overlap       error  overlap/train-eval: 120 of… │
│ graph_tensors  ▁▂▄▅▇█     1,000       +200   ✔  resume        ok                                 │
│                                                                                                  │
│ newest findings                                                                                  │
│ ep 4       warning  memory/growth                 list `all_losses` in train() holds 1,200 new … │
│ ep 2       error    checkpoint/optimizer-missing  checkpoint /ckpt/epoch2.pt holds no optimizer… │
│ ep 2       error    overlap/train-eval            120 of 320 samples served by val_loader are a… │
╰─────────────────────────────────────────────────────────────────── 2 error · 1 warning · 0 info ─╯
"""


def test_dashboard_renders_exactly_into_a_fixed_width_console():
    view = RunView.from_events(sample_events())
    assert render_text(view, 100) == EXPECTED_100


def test_dashboard_fits_narrow_and_wide_consoles():
    view = RunView.from_events(sample_events())
    for width in (60, 80, 160):
        lines = render_text(view, width).splitlines()
        assert all(len(line) == width for line in lines), width
        assert "memory per epoch" in "\n".join(lines)


def test_view_folds_the_event_stream():
    view = RunView.from_events(sample_events(epochs=6, eval_every=2))
    assert (view.epochs, view.steps, view.status, view.phase) == (6, 300, "ok", "done")
    assert view.elapsed == 67.0
    assert [r["eval"] for r in view.eval_cadence()] == [0, 1, 0, 1, 0, 1]
    assert [r["train"] for r in view.eval_cadence()] == [1] * 6
    series = view.memory_series()   # epoch-end samples only: the sampler's 999 MB never shows
    assert set(series) == {"rss_bytes", "tensor_bytes", "tensors", "graph_tensors", "graph_bytes"}
    assert series["tensors"] == [(e, 120.0 + 400 * (e - 1)) for e in range(1, 7)]
    assert max(v for _, v in series["rss_bytes"]) == 305_000_000
    assert view.checks["overlap"].severity == "error"
    assert view.checks["memory"].severity == "warning"
    assert view.checks["eval-cadence"].severity == "ok"
    assert view.checks["checkpoint"].severity == "error"
    assert view.overlaps() == [{"label": "train_loader / val_loader", "count": 120.0, "total": 320.0,
                                "severity": "error", "code": "overlap/train-eval"}]
    (ck,) = view.checkpoints
    assert ck.held == {"model": "4 tensors", "optimizer": False, "scheduler": False, "scaler": False,
                       "counters": "epoch"}
    assert (ck.epoch, ck.step, ck.size_bytes, ck.verified) == (2, 100, 48_213, True)
    assert ck.codes == {"checkpoint/optimizer-missing": "error"}


def test_checkpoint_holds_in_the_save_event_itself():
    view = RunView.from_events([
        {"kind": "checkpoint_saved", "t": 1.0, "data": {"path": "/c/a.pt", "bytes": 10, "steps": 5, "holds": {
            "weights": [{"tensors": 2}, {"tensors": 3}], "optimizers": [{"path": "opt"}],
            "schedulers": [{"path": "s1"}, {"path": "s2"}], "scalers": [], "counters": []}}},
        {"kind": "checkpoint_saved", "t": 2.0, "data": {"path": "/c/b.pt", "held": {"model": True, "optimizer": False}}},
        {"kind": "checkpoint_verified", "t": 3.0, "data": {"path": "/c/a.pt", "differences": 2}},
    ])
    a, b = view.checkpoints
    assert a.held == {"model": "5 tensors", "optimizer": True, "scheduler": "2", "scaler": False, "counters": False}
    assert a.verified is False and b.verified is None
    assert b.held == {"model": True, "optimizer": False}


def test_a_finding_update_replaces_the_row_and_counts_updates():
    events = sample_events(epochs=1)
    f = {"code": "memory/growth", "severity": "warning", "message": "m1", "key": "k"}
    events.insert(-1, {"kind": "finding", "t": 1.0, "data": dict(f)})
    events.insert(-1, {"kind": "finding", "t": 2.0, "data": dict(f, message="m2", update=True)})
    view = RunView.from_events(events)
    (row,) = [x for x in view.findings.values() if x.code == "memory/growth"]
    assert row.message == "m2" and row.updates == 1


def test_view_is_tolerant_of_unknown_kinds_missing_fields_and_a_truncated_log(tmp_path):
    events = [
        {"kind": "run_start", "t": 5.0},                      # no data
        {"kind": "from_the_future", "t": 6.0, "data": {"x": 1}},
        {"kind": "loader_pass_end", "data": {}},              # no t, no fields
        {"kind": "finding", "t": 7.0, "data": {"severity": "error"}},
        {"kind": "memory_sample", "t": 8.0, "data": {"at": "epoch_end", "epoch": 1, "rss": None, "cuda": [
            {"device": 0, "allocated": 1e9, "reserved": 2e9, "num_ooms": 0, "total": 8e10}, "junk"],
            "nvml": [{"device": 0, "used": 3e9, "total": 8e10}], "census_diff": {"count": 5}}},
        {"kind": "epoch_end", "t": 9.0, "data": {"epoch": "one"}},
        "not an event", {"no": "kind"},
    ]
    path = write_log(tmp_path, events, truncate_tail=True)
    view = RunView.from_log(path)
    assert view.events_bad == 3                               # two non-events + the truncated line
    assert view.status == "running" and view.epochs == 1
    assert set(view.memory_series()) == {"cuda:0 allocated", "cuda:0 reserved", "nvml:0 used"}
    text = render_text(view, 100)
    assert "–" in text and "cuda:0 allocated" in text
    assert "1,000.0 MiB" not in text and "954 MiB" in text


def test_user_strings_are_not_interpreted_as_rich_markup():
    events = sample_events(epochs=4)
    events.insert(-1, {"kind": "finding", "t": 1.0, "data": {
        "code": "eval/[bold]x[/bold]", "severity": "warning", "message": "[red]not markup[/red] " + HOSTILE}})
    text = render_text(RunView.from_events(events), 160)
    assert "[red]not markup[/red]" in text and "eval/[bold]x[/bold]" in text


def test_epoch_line_is_one_concise_line():
    line = epoch_line(RunView.from_events(sample_events()))
    assert "\n" not in line and len(line) < 160
    assert line.startswith("[watchdog] epoch 6 · steps 300")
    assert "rss_bytes=291 MiB" in line and "findings 2E 1W 0I" in line


def test_helpers():
    assert sparkline([1, 2, 3, 4]) == "▁▃▆█"
    assert sparkline([]) == "–" and sparkline([5, 5]) == "▄▄"
    assert fmt_bytes(None) == "–" and fmt_bytes(21 * 2**20) == "21.0 MiB" and fmt_bytes(-3 * 2**30) == "-3.0 GiB"
    assert json.loads(json.dumps(sample_events()))  # the fixture itself is JSON-safe


def test_memory_per_epoch_takes_nvml_from_the_in_epoch_sampler():
    events = [{"kind": "run_start", "t": 0.0, "data": {}}]
    for k in range(3):   # epoch k+1: sampler samples during it (epoch = k completed), then its end
        for j in range(3):
            events.append({"kind": "memory_sample", "t": 10.0 * k + j, "data": {
                "at": "sampler", "epoch": k, "steps": 10 * k + j, "rss": 1e9,
                "cuda": [{"device": 0, "allocated": 5e9, "reserved": 6e9}],
                "nvml": [{"device": 0, "used": 7e9 + k * 1e8 + j, "total": 8e10}]}})
        events.append({"kind": "memory_sample", "t": 10.0 * k + 9, "data": {
            "at": "epoch_end", "epoch": k + 1, "steps": 10 * k + 9, "rss": 2e9 + k,
            "cuda": [{"device": 0, "allocated": 5e9 + k, "reserved": 6e9, "epoch_peak": 5.5e9,
                      "active": 1, "num_ooms": 0, "total": 8e10}]}})
    series = RunView.from_events(events).memory_series()
    assert series["nvml:0 used"] == [(1, 7e9 + 2), (2, 7.1e9 + 2), (3, 7.2e9 + 2)]
    assert series["rss_bytes"] == [(1, 2e9), (2, 2e9 + 1), (3, 2e9 + 2)]     # the epoch end's own
    assert set(series) == {"nvml:0 used", "rss_bytes", "cuda:0 allocated", "cuda:0 reserved",
                           "cuda:0 epoch_peak"}
