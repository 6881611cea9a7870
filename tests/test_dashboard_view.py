"""Issue 6: RunView built from events, and the dashboard rendered into a fixed-width console.

The event streams are the examples' real runs, recorded by tests/fixtures/record.py."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import pytest
from markupsafe import Markup
from rich.console import Console
from rich.text import Text

from fixtures import fixture_events, fixture_names, replace_text, write_log
from watchdog.core import registry
from watchdog.core.format import fmt_bytes
from watchdog.report.fold import FeatureView, RunView
from watchdog.report.html import render_html
from watchdog.report.panels import DashboardRenderable, epoch_line, sparkline

def render_text(view: RunView, width: int = 100, height: int = 40) -> str:
    console = Console(width=width, height=height, file=io.StringIO(), color_system=None, force_terminal=False,
                      record=True, legacy_windows=False)
    console.print(DashboardRenderable(view))
    return console.export_text()


def of_kind(events: list[dict], kind: str) -> list[dict]:
    return [e["data"] for e in events if e["kind"] == kind]


def epoch_end_samples(events: list[dict]) -> list[dict]:
    return [d for d in of_kind(events, "memory_sample") if d["at"] == "epoch_end"]


# The dashboard of examples/memory_leak.py's recorded run. After re-recording it
# (`python -m tests.fixtures.record memory_leak`), re-pin from
# `print(render_text(RunView.from_events(fixture_events("memory_leak"))))` and read the diff.
EXPECTED_100 = """\
╭─ watchdog · run completed · 0 errors · 1 warning · 1 info ───────────────────────────────────────╮
│ epochs done 6   steps 150   rate 114 steps/s   phase done   elapsed 00:01                        │
│                                                                                                  │
│ memory per epoch                                                                                 │
│ source         chart       last    Δ/epoch                                                       │
│ process RSS    ▁▂▂▂▇█   319 MiB   +771 KiB                                                       │
│ tensor bytes   ▁▂▄▅▇█   152 KiB  +12.6 KiB                                                       │
│ live tensors   ▁▂▄▅▇█       324        +50                                                       │
│ graph bytes    ▁▂▄▅▇█  75.6 KiB  +12.6 KiB                                                       │
│ graph tensors  ▁▂▄▅▇█       300        +50                                                       │
│                                                                                                  │
│ checks                                                                                           │
│ ✔  checkpoint-completeness  ok                                                                   │
│ ✔  checkpoint-integrity     ok                                                                   │
│ ●  eval-cadence             info     eval/missing-epochs   Epochs 0–5 of 6 had no evaluation; n… │
│ ✔  eval-mode                ok                                                                   │
│ ▲  memory                   warning  memory/tensor-growth  Live tensors grow every epoch since … │
│ ✔  overlap                  ok                                                                   │
│ ✔  resume                   ok                                                                   │
│ ✔  sampler-epoch            ok                                                                   │
│                                                                                                  │
│ newest findings                                                                                  │
│ ep 1       info     eval/missing-epochs   Epochs 0–5 of 6 had no evaluation; no evaluation ran … │
│ ep 3       warning  memory/tensor-growth  Live tensors grow every epoch since epoch 0: +50 tens… │
╰─────────────────────────────────────────────────────────────────────── run 20231114-221320-4242 ─╯
"""


def test_dashboard_renders_exactly_into_a_fixed_width_console():
    view = RunView.from_events(fixture_events("memory_leak"))
    assert render_text(view, 100) == EXPECTED_100


@pytest.mark.parametrize("name", fixture_names())
def test_dashboard_fits_narrow_and_wide_consoles(name):
    view = RunView.from_events(fixture_events(name))
    for width in (60, 80, 160):
        lines = render_text(view, width).splitlines()
        assert all(len(line) == width for line in lines), width
        # the full layout from 100 columns on; below, the compact one (issue 13 item 5)
        assert ("memory per epoch" in "\n".join(lines)) is (width >= 100)


def test_view_of_the_leaking_run_shows_the_epoch_end_census_growing():
    events = fixture_events("memory_leak")
    view = RunView.from_events(events)
    assert (view.epochs, view.steps, view.status, view.phase) == (6, 150, "ok", "done")
    assert view.elapsed == pytest.approx(events[-1]["t"] - events[0]["t"])
    series = view.memory_series()
    assert set(series) == {"rss_bytes", "tensor_bytes", "tensors", "graph_tensors", "graph_bytes"}
    # one point per epoch, from the epoch-end samples only (the sampler's in-epoch RSS never shows)
    samples = epoch_end_samples(events)
    # numbered as the user's loop numbers them: the sample at the end of epoch e (from 0) is point e,
    # while the sample's own `epoch` field counts the epochs completed
    assert [e for e, _ in series["tensors"]] == [0, 1, 2, 3, 4, 5] == [d["epoch"] - 1 for d in samples]
    assert series["rss_bytes"] == [(d["epoch"] - 1, float(d["rss"])) for d in samples]
    assert series["tensors"] == [(d["epoch"] - 1, float(d["census"]["count"])) for d in samples]
    # the seed's leak: 25 losses and 25 outputs kept per epoch, 50 of them holding graphs
    tensors = [v for _, v in series["tensors"]]
    assert [b - a for a, b in zip(tensors, tensors[1:])] == [50.0] * 5
    graphs = [v for _, v in series["graph_tensors"]]
    assert [b - a for a, b in zip(graphs, graphs[1:])] == [50.0] * 5
    assert view.checks["memory"].severity == "warning"
    assert view.checks["eval-cadence"].severity == "info"  # never evaluates, and holds no held-out data
    assert view.checks["overlap"].severity == "ok"
    assert view.checks["checkpoint-completeness"].severity == view.checks["checkpoint-integrity"].severity == "ok"
    assert [r["eval"] for r in view.eval_cadence()] == [0] * 6
    assert view.overlaps() == [] and view.checkpoints == []


def test_a_sparse_census_s_change_per_epoch_is_divided_by_the_epochs_between_its_samples():
    """The census skips epochs to stay within its time budget: the leaking run's censuses kept at the
    ends of epochs 0, 3 and 5 only still read +50 tensors per epoch (not +125 per sample)."""
    events = fixture_events("memory_leak")
    for i, d in enumerate(epoch_end_samples(events)):
        if i not in (0, 3, 5):
            del d["census"]
    view = RunView.from_events(events)
    assert [e for e, _ in view.memory_series()["tensors"]] == [0, 3, 5]
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(view.features["memory"].dashboard_table())
    row = next(line for line in console.export_text().splitlines() if line.startswith("live tensors"))
    assert row.split()[-1] == "+50", row


def test_view_of_the_overlap_run_shows_the_exact_counts():
    events = fixture_events("overlap_bug")
    view = RunView.from_events(events)
    assert (view.epochs, view.steps, view.status) == (3, 75, "ok")
    (row,) = view.overlaps()
    assert (row["count"], row["total"], row["severity"], row["code"]) == (332, 400, "error", "overlap/train-eval")
    assert row["label"].startswith("train_loader / ")
    assert view.checks["overlap"].severity == "error"
    assert [(r["train"], r["eval"]) for r in view.eval_cadence()] == [(1, 1)] * 3
    assert [(p.loader, p.role, p.samples) for p in view.passes[:2]] == [
        ("`train_loader`", "train", 1600), ("`val_loader`", "eval", 400)]


def test_view_of_the_cadence_runs_shows_which_epochs_evaluated():
    every2 = RunView.from_events(fixture_events("eval_cadence_every2"))
    assert [r["eval"] for r in every2.eval_cadence()] == [0, 1, 0, 1, 0, 1]
    assert [r["train"] for r in every2.eval_cadence()] == [1] * 6
    assert every2.checks["eval-cadence"].severity == "warning"   # watched with the default eval_every=1
    assert [(r["evaluated"], r["flagged"]) for r in every2.eval_cadence()] == [(False, True), (True, False)] * 3
    only_at_end = RunView.from_events(fixture_events("eval_cadence_seed"))
    # the evaluation after training lands on the last epoch; the check calls it an error
    assert [r["eval"] for r in only_at_end.eval_cadence()] == [0, 0, 0, 0, 0, 1]
    assert only_at_end.checks["eval-cadence"].severity == "error"
    assert [r["flagged"] for r in only_at_end.eval_cadence()] == [True] * 5 + [False]
    (f,) = only_at_end.findings.values()
    assert f.code == "eval/missing-epochs" and "only evaluation ran after training" in f.message


def test_view_of_the_checkpoint_runs_shows_what_each_save_held():
    events = fixture_events("checkpoint_seed_save")
    view = RunView.from_events(events)
    saves = of_kind(events, "checkpoint_saved")
    assert len(view.checkpoints) == len(saves) == 3
    for ck, save, epoch in zip(view.checkpoints, saves, (1, 2, 3)):
        assert ck.path == save["path"] and ck.path.endswith("/checkpoint.pt")
        assert ck.held == {"model": "4 tensors", "optimizer": False, "scheduler": False, "scaler": False,
                           "counters": "epoch"}
        assert (ck.epoch, ck.step, ck.size_bytes) == (epoch, save["steps"], save["bytes"])
        assert ck.codes == {"checkpoint/missing-optimizer-state": "error", "checkpoint/missing-scheduler-state": "error"}
    # read back once (checkpoint_verify="first"), and equal
    assert [ck.verified for ck in view.checkpoints] == [True, None, None]
    assert view.checks["checkpoint-completeness"].severity == "error"  # the saves leave optimizer and scheduler out
    assert view.checks["checkpoint-integrity"].severity == "ok"        # and read back equal

    resume = RunView.from_events(fixture_events("checkpoint_seed_resume"))
    assert resume.checks["resume"].severity == "error"
    assert {f.code for f in resume.findings.values() if f.family == "resume"} == {
        "resume/scheduler-restarted", "resume/optimizer-state-absent"}

    correct = RunView.from_events(fixture_events("correct_loop"))
    assert [ck.held for ck in correct.checkpoints] == [
        {"model": "4 tensors", "optimizer": True, "scheduler": True, "scaler": False, "counters": "epoch"}] * 3
    assert all(not ck.codes for ck in correct.checkpoints)
    assert correct.findings == {} and correct.counts() == {"error": 0, "warning": 0, "info": 0}


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
    events = fixture_events("memory_leak")
    reported = [d for d in of_kind(events, "finding") if d["code"] == "memory/tensor-growth"]
    assert [d["update"] for d in reported] == [False, True, True]
    assert reported[0]["message"] != reported[-1]["message"]   # the projection shrinks as the run ends
    view = RunView.from_events(events)
    (row,) = [x for x in view.findings.values() if x.code == "memory/tensor-growth"]
    assert row.message == reported[-1]["message"] and row.updates == 2


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
    path = write_log(tmp_path, events, torn_tail='{"kind": "memory_sample", "t": 10.0, "data": {"epo')
    view = RunView.from_log(path)
    assert view.events_bad == 3                               # two non-events + the truncated line
    assert view.status == "running" and view.epochs == 1
    assert set(view.memory_series()) == {"cuda:0 allocated", "cuda:0 reserved", "nvml:0 used"}
    text = render_text(view, 100)
    assert "–" in text and "cuda:0 allocated" in text
    assert "1,000.0 MiB" not in text and "954 MiB" in text


def test_a_killed_run_s_log_is_read_up_to_its_torn_last_line(tmp_path):
    events = fixture_events("memory_leak")
    cut = [i for i, e in enumerate(events) if e["kind"] == "epoch_end"][2]    # killed after epoch 3's end
    torn = json.dumps(events[cut + 1])[:40]
    view = RunView.from_log(write_log(tmp_path, events[:cut + 1], torn_tail=torn))
    assert view.events_bad == 1 and view.status == "running" and view.epochs == 3
    assert view.phase != "done" and view.elapsed == pytest.approx(events[cut]["t"] - events[0]["t"])
    assert "epochs done 3" in render_text(view, 100)


def test_user_strings_are_not_interpreted_as_rich_markup():
    # a checkpoint file named like rich markup: the recorded run, with the file name swapped
    events = fixture_events("checkpoint_seed_save")
    assert replace_text(events, "checkpoint.pt", "[red]not markup[/red].pt") > 10
    text = render_text(RunView.from_events(events), 200)
    assert "Checkpoint [red]not markup[/red].pt leaves out" in text


def test_epoch_line_is_one_concise_line():
    events = fixture_events("memory_leak")
    line = epoch_line(RunView.from_events(events))
    assert "\n" not in line and len(line) < 160
    assert line.startswith("[watchdog] epoch 5 ended · epochs done 6 · steps 150")
    last = epoch_end_samples(events)[-1]
    assert f"process RSS {fmt_bytes(last['rss'])}" in line
    assert f"tensor bytes {fmt_bytes(last['census']['bytes'])}" in line
    assert "findings 0E 1W 1I" in line


def test_a_census_stopped_at_its_allowance_is_no_memory_series_in_the_line_or_the_charts():
    # An epoch-end sample whose census stopped at its allowance holds `census_stopped` (the seconds
    # spent and the estimate for the whole) instead of `census`: that is no memory measurement.
    events = fixture_events("memory_leak")
    last = epoch_end_samples(events)[-1]
    del last["census"]
    last["census_stopped"] = {"seconds": 0.01, "estimated_s": 0.8}
    view = RunView.from_events(events)
    line = epoch_line(view)
    assert f"process RSS {fmt_bytes(last['rss'])}" in line and "census_stopped" not in line
    # the earlier epochs' censuses still chart, the stopped one adds none: the line's tensor bytes are
    # the last census's, and say its epoch (the user's, from 0: the sample before the last one's)
    before = epoch_end_samples(events)[-2]
    assert f"tensor bytes {fmt_bytes(before['census']['bytes'])} (epoch {before['epoch'] - 1})" in line
    assert f"process RSS {fmt_bytes(last['rss'])} tensor" in line  # measured in the latest epoch: no epoch said
    series = view.memory_series()
    assert not [name for name in series if "census_stopped" in name]
    assert len(series["rss_bytes"]) == len(epoch_end_samples(events))
    assert len(series["tensor_bytes"]) == len(epoch_end_samples(events)) - 1


def _watched_fit_events(tmp_path) -> list[dict]:
    import torch
    import watchdog
    from loops import fit, loader, make_dataset, make_model
    torch.manual_seed(0)
    ds = make_dataset(256)
    train, val = torch.utils.data.random_split(ds, [192, 64], generator=torch.Generator().manual_seed(0))
    with watchdog.watch(report_dir=tmp_path / "wd", dashboard=False, summary=False):
        fit(make_model(), loader(train, shuffle=True), loader(val), epochs=2)
    return [json.loads(line) for line in (tmp_path / "wd" / "events.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("fold_from", ["run_start", "first pass"])
def test_the_step_rate_of_the_first_epoch_counts_its_steps_over_the_pass_that_made_them(tmp_path, fold_from):
    # The dashboard's view may start folding at the first pass (not at run_start): the first epoch's
    # rate is then its steps over its training pass, never over the microseconds between the pass's
    # end and the epoch's end (the pass's end carries the run's step count as `step`).
    events = _watched_fit_events(tmp_path)
    first = 0 if fold_from == "run_start" else next(i for i, e in enumerate(events) if e["kind"] == "loader_pass_start")
    end = next(i for i, e in enumerate(events) if e["kind"] == "epoch_end")
    view = RunView.from_events(events[first:end + 1])
    start = events[0 if fold_from == "run_start" else first]["t"]
    steps = events[end]["data"]["steps"]
    assert steps == 6 and view.steps == 6
    assert view.step_rate() == pytest.approx(steps / (events[end]["t"] - start), rel=0.05)
    assert view.step_rate() <= steps / (events[end - 1]["t"] - start)


def test_helpers():
    assert sparkline([1, 2, 3, 4]) == "▁▃▆█"
    assert sparkline([]) == "–" and sparkline([5, 5]) == "▄▄"
    assert fmt_bytes(None) == "–" and fmt_bytes(21 * 2**20) == "21.0 MiB" and fmt_bytes(-3 * 2**30) == "-3.0 GiB"


def test_memory_per_epoch_takes_nvml_from_the_in_epoch_sampler():
    # CUDA and NVML readings: the recorded runs are CPU-only, so these samples are written by hand
    # in the shape the memory probe writes on a GPU (tests/test_memory_gpu.py covers the real path).
    events = [{"kind": "run_start", "t": 0.0, "data": {}}]
    for k in range(3):   # the user's epoch k: sampler samples during it (epoch = k completed), then its end
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
    assert series["nvml:0 used"] == [(0, 7e9 + 2), (1, 7.1e9 + 2), (2, 7.2e9 + 2)]
    assert series["rss_bytes"] == [(0, 2e9), (1, 2e9 + 1), (2, 2e9 + 2)]     # the epoch end's own
    assert set(series) == {"nvml:0 used", "rss_bytes", "cuda:0 allocated", "cuda:0 reserved",
                           "cuda:0 epoch_peak"}


@dataclass(eq=False)
class EpochEndsView(FeatureView):
    """A new family's view: folds a kind the run's view folds too, and sees every finding."""
    name = "epoch-ends"
    exports = ("epoch_end_steps",)
    section_order = 25  # between the evaluation cadence (20) and the overlap (30)

    epoch_end_steps: list = field(default_factory=list)
    codes: list = field(default_factory=list)

    def on_epoch_end(self, t, d):
        self.epoch_end_steps.append(d.get("steps"))

    def found(self, finding):
        self.codes.append(finding.code)

    def summary_cards(self):
        return [("epoch ends", str(len(self.epoch_end_steps)))]

    def html_section(self):
        # Markup: HTML the view vouches for (a feature renders its template: report.markup.render);
        # a plain str would be text, escaped
        return Markup(f'<section id="epoch-ends">{len(self.epoch_end_steps)} epoch ends</section>')

    def epoch_line_part(self):
        return f"epoch ends {len(self.epoch_end_steps)}"

    def dashboard_table(self):
        return Text(f"epoch ends: {self.epoch_end_steps}")


def test_a_new_familys_view_is_one_class_its_feature_declares(monkeypatch):
    """What a feature's view folds and shows reaches the run's view, the HTML page, the dashboard and
    the epoch line through registry.views() alone: nothing in report/ names it."""
    views = registry.views()
    monkeypatch.setattr(registry, "views", lambda: [*views, EpochEndsView])
    events = fixture_events("memory_leak")
    view = RunView.from_events(events)
    steps = [d["steps"] for d in of_kind(events, "epoch_end")]
    assert view.epoch_end_steps == steps and len(steps) == 6 and view.epochs == 6   # both folded it
    assert view.features["epoch-ends"].codes == [d["code"] for d in of_kind(events, "finding")]
    page = render_html(view)
    assert '<div class="k">epoch ends</div><div class="v">6</div>' in page
    assert page.index('id="cadence"') < page.index('id="epoch-ends"') < page.index('id="overlap"')
    assert epoch_line(view).endswith(" · eval passes 0 · process RSS 319 MiB tensor bytes 152 KiB"
                                     " · epoch ends 6 · findings 0E 1W 1I")
    dashboard = render_text(view, 100)
    assert "memory per epoch" in dashboard and f"epoch ends: {steps}" in dashboard
    with pytest.raises(AttributeError, match="no_such_read"):
        view.no_such_read


def test_below_100_columns_or_30_rows_the_dashboard_is_compact_and_never_cuts_a_code():
    """tmux at 80x24, a CI log: the header and one line per check that is not ok (issue 13 item 5)."""
    view = RunView.from_events(fixture_events("overlap_bug"))
    for width, height in ((80, 40), (120, 24)):
        lines = render_text(view, width, height).splitlines()
        assert len(lines) <= 6, lines
        assert all(len(line) <= width for line in lines)
        [row] = [line for line in lines if "overlap" in line and "error" in line]
        assert "overlap/train-eval" in row  # the code whole; the message gives way
    full = render_text(view, 120, 40)
    assert "newest findings" in full and "memory per epoch" in full
    clean = RunView.from_events(fixture_events("correct_loop"))
    assert any(f"all {len(clean.checks)} checks ok" in line for line in render_text(clean, 80, 24).splitlines())


def test_in_the_full_dashboard_every_check_shows_its_code_whole():
    """At 100 columns the checks sit under the memory table, from 140 beside it: a code is never cut."""
    view = RunView.from_events(fixture_events("checkpoint_seed_resume"))
    codes = {st.code for st in view.checks.values() if st.code}
    assert len(codes) >= 3
    for width in (100, 120, 160):
        text = render_text(view, width, 40)
        checks = text.split("checks")[1].split("newest findings")[0]
        for code in codes:
            assert code in checks, (width, code)
