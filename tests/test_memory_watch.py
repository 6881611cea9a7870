"""Memory findings end to end: real loops under ``watchdog.watch``, real DataLoaders, report.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

import memory_loops as loops
import watchdog
from watchdog.memory.growth import MB
from watchdog.report.fold import RunView
from watchdog.report.panels import epoch_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def census_every_epoch(monkeypatch):
    """These loops' epochs last milliseconds: within its 1% budget the census would wait seconds,
    so they take it at every epoch end (``test_sparse_censuses_*`` run it within the budget)."""
    monkeypatch.setenv("WATCHDOG_MEMORY_CENSUS", "every-epoch")


def _watch(tmp_path):
    return watchdog.watch(report_dir=tmp_path, dashboard=False, summary=False)


class BudgetClock:
    """The census budget's clock, moved by the loop: each epoch lasts ``epoch_s``, each census
    ``census_s`` (the real census runs; only the time it is charged is fixed)."""

    def __init__(self, epoch_s: float, census_s: float):
        self.now, self.epoch_s, self.census_s = 0.0, epoch_s, census_s

    def __call__(self) -> float:
        return self.now

    def epoch_end(self, epoch: int) -> None:
        self.now += self.epoch_s


def _budgeted(monkeypatch, clock: BudgetClock, guess: float | None = None):
    import watchdog.memory.budget as budget_module
    import watchdog.memory.census as census_module
    import watchdog.memory.probe as probe_module
    from watchdog.memory.budget import CensusBudget
    from watchdog.memory.census import CensusStopped

    monkeypatch.setenv("WATCHDOG_MEMORY_CENSUS", "1")
    per_block = clock.census_s / 1000 if guess is None else guess
    monkeypatch.setattr(budget_module, "_measured_s_per_block", [per_block])  # predicted right, or the guess
    real_census = census_module.take_census  # the probe imports it at its first census
    taken = []

    def census_charged_census_s(previous=None, allowance_s=None):
        if allowance_s is not None and allowance_s < clock.census_s:  # as the real one: stopped at its allowance
            clock.now += allowance_s
            raise CensusStopped(allowance_s, clock.census_s)
        census = real_census(previous=previous)
        clock.now += clock.census_s
        taken.append(census)
        return census

    monkeypatch.setattr(census_module, "take_census", census_charged_census_s)
    monkeypatch.setattr(probe_module, "CensusBudget",
                        lambda clock=None, blocks=None: CensusBudget(clock=clock_, blocks=lambda: 1000))
    clock_ = clock
    return taken


def _events(tmp_path):
    return [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]


def _epoch_samples(tmp_path):
    return [e["data"] for e in _events(tmp_path) if e["kind"] == "memory_sample" and e["data"]["at"] == "epoch_end"]


def test_sparse_censuses_within_the_budget_report_the_leak_at_the_fourth_census(tmp_path, monkeypatch):
    # 1 s epochs, 50 ms censuses: 1% of the wall time buys a census every 5th epoch.
    clock = BudgetClock(epoch_s=1.0, census_s=0.05)
    _budgeted(monkeypatch, clock)
    with _watch(tmp_path) as run:
        clock.epoch_end(0)  # the first epoch's time
        loops.seed_leak(22, epoch_end=clock.epoch_end)
    census_epochs = [d["epoch"] for d in _epoch_samples(tmp_path) if "census" in d]
    assert census_epochs == [5, 10, 15, 20]
    (f,) = _memory(run)
    # at the 4th census, the end of epoch 19 (from 0, as the finding's stamp); growth measured from the
    # first census, at the end of epoch 4
    assert f.code == "memory/tensor-growth" and f.epoch == f.evidence["epoch"] == 19
    assert f.evidence["baseline_epoch"] == 4 and f.evidence["series_from_epoch"] == 0
    assert "+32 tensors/epoch" in f.message  # per epoch: divided by the 5 epochs between censuses
    assert "since epoch 4" in f.message
    assert "list `all_losses` in seed_leak()" in f.message and "list `all_outputs` in seed_leak()" in f.message
    assert f.evidence["increments"] == [32.0, 32.0, 32.0]


def test_a_census_guessed_too_cheap_stops_at_its_allowance_and_the_leak_is_still_reported(tmp_path, monkeypatch):
    # 1 s epochs, 50 ms censuses, but the first guess is 50x too low (1 ms): the first attempt, at the
    # first epoch end, is allowed the 10 ms the budget holds and stops there; the next one is planned
    # for its estimate (50 ms) and completes.
    clock = BudgetClock(epoch_s=1.0, census_s=0.05)
    _budgeted(monkeypatch, clock, guess=0.001 / 1000)
    with _watch(tmp_path) as run:
        clock.epoch_end(0)
        loops.seed_leak(26, epoch_end=clock.epoch_end)
    samples = _epoch_samples(tmp_path)
    stopped = [d["epoch"] for d in samples if "census_stopped" in d]
    census_epochs = [d["epoch"] for d in samples if "census" in d]
    assert stopped == [1] and samples[0]["census_stopped"]["estimated_s"] == 0.05
    assert census_epochs == [6, 11, 16, 21, 26]  # the stop's 10 ms paid back first, then 5 s for 50 ms
    (f,) = _memory(run)
    assert f.code == "memory/tensor-growth" and f.epoch == 20  # at the 4th census that completed (from 0)
    assert f.evidence["increments"] == [32.0, 32.0, 32.0]


def test_a_stopped_census_is_no_memory_series_in_the_views(tmp_path, monkeypatch):
    # Field run (pytorch/examples mnist under `watchdog run`): the census stopped at its allowance
    # at the first epoch end, and the epoch line printed "census_stopped.estimated_s 0" as if the
    # stop's seconds were a memory source. The views chart memory; the stop's seconds are not.
    clock = BudgetClock(epoch_s=1.0, census_s=0.05)
    _budgeted(monkeypatch, clock, guess=0.001 / 1000)
    with _watch(tmp_path):
        clock.epoch_end(0)
        loops.seed_leak(8, epoch_end=clock.epoch_end)
    assert "census_stopped" in _epoch_samples(tmp_path)[0]
    view = RunView.from_events(_events(tmp_path))
    series = view.memory_series()
    assert not [name for name in series if "census" in name]
    assert set(series) >= {"rss_bytes", "tensors", "tensor_bytes"}   # the completed census (epoch 6) charted
    assert [e for e, _ in series["tensors"]] == [5]
    line = epoch_line(view)
    assert "census" not in line and "process RSS" in line and "tensor bytes" in line


def test_a_completed_census_is_charted_in_the_views(tmp_path):
    with _watch(tmp_path):
        loops.seed_leak(3)
    samples = _epoch_samples(tmp_path)
    assert [("census" in d, "census_stopped" in d) for d in samples] == [(True, False)] * 3
    series = RunView.from_events(_events(tmp_path)).memory_series()
    assert [e for e, _ in series["tensors"]] == [0, 1, 2]
    assert [v for _, v in series["tensors"]] == [d["census"]["count"] for d in samples]


def test_sparse_censuses_within_the_budget_raise_no_alarm_on_the_swinging_control(tmp_path, monkeypatch):
    clock = BudgetClock(epoch_s=1.0, census_s=0.03)
    _budgeted(monkeypatch, clock)
    with _watch(tmp_path) as run:
        clock.epoch_end(0)
        loops.swinging_control(14, epoch_end=clock.epoch_end)
    census_epochs = [d["epoch"] for d in _epoch_samples(tmp_path) if "census" in d]
    assert census_epochs == [3, 6, 9, 12]
    assert _memory(run) == []
    assert [f for f in run.findings if f.severity != "info"] == []


def test_short_runs_take_no_census_within_the_budget(tmp_path, monkeypatch):
    # Epochs of 10 ms, a census predicted at 10 ms (the heap's size): 1% of 40 ms buys none.
    import watchdog.memory.probe as probe_module
    from watchdog.memory.budget import CensusBudget

    monkeypatch.setenv("WATCHDOG_MEMORY_CENSUS", "1")
    clock = BudgetClock(epoch_s=0.01, census_s=0.01)
    monkeypatch.setattr(probe_module, "CensusBudget",
                        lambda clock=None, blocks=None: CensusBudget(clock=clock_, blocks=lambda: 250_000_000))
    clock_ = clock
    with _watch(tmp_path) as run:
        clock.epoch_end(0)
        loops.seed_leak(4, epoch_end=clock.epoch_end)
    samples = _epoch_samples(tmp_path)
    assert len(samples) == 4 and not any("census" in d for d in samples)
    assert all(d["rss"] for d in samples)  # RSS (and CUDA) are still read at every epoch end
    assert _memory(run) == []


def _memory(run):
    return [f for f in run.findings if f.code.startswith("memory/")]


def test_an_update_after_the_holders_walk_says_which_epoch_the_holders_counts_are_from(tmp_path):
    # Field run (pytorch/examples mnist with its losses kept in a list): the finding, updated at the
    # end of epoch 4, said the list held "128 items", its count at epoch 3 (the holders are walked
    # again only every CULPRIT_EVERY epochs); the list held 160 by then.
    with _watch(tmp_path) as run:
        loops.seed_leak(6)
    (f,) = _memory(run)
    assert f.evidence["epoch"] == 5
    assert "Held by (at the end of epoch 3, when last looked for): list `all_losses`" in f.message
    assert "out of 64 items" in f.message   # 16 steps an epoch: 4 epochs' losses at epoch 3's end


def test_the_first_report_of_a_growth_names_its_holders_without_an_epoch(tmp_path):
    with _watch(tmp_path) as run:
        loops.seed_leak(4)
    (f,) = _memory(run)
    assert f.evidence["epoch"] == 3
    assert "Held by: list `all_losses`" in f.message and "out of 64 items" in f.message


def test_seed_pattern_found_at_epoch_4_with_both_lists_named(tmp_path):
    with _watch(tmp_path) as run:
        loops.seed_leak(5)
    found = {f.code: f for f in _memory(run)}
    assert set(found) == {"memory/tensor-growth"}
    f = found["memory/tensor-growth"]
    assert f.severity == "warning"
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    first = next(e for e in events if e["kind"] == "finding" and e["data"]["code"] == "memory/tensor-growth")
    assert first["data"]["epoch"] == 3  # caught at the end of the 4th epoch: the user's epoch 3 (from 0)
    assert "list `all_losses` in seed_leak() at memory_loops.py:" in f.message
    assert "list `all_outputs` in seed_leak()" in f.message
    assert "+32 tensors/epoch" in f.message
    assert "loss.item()" in f.fix and "output.detach()" in f.fix
    holders = {h["name"]: h for h in f.evidence["holders"]}
    assert holders["all_losses"]["with_graph"] == 16
    # Projected to the run's length, found in the training code (`epochs` = 5).
    assert f.evidence["projected_epochs"] == 5 and f.evidence["run_length_from"] == "`epochs` in seed_leak()"
    first_message = first["data"]["message"]
    assert "more by the end of the run's last epoch (epoch 4, from `epochs` in seed_leak() = 5)" in first_message
    report = json.loads((tmp_path / "report.json").read_text())
    codes = [x["code"] for x in report["findings"]]
    assert "memory/tensor-growth" in codes


def test_the_tensor_growth_words_do_not_hang_on_rss_noise(tmp_path, monkeypatch):
    """The same leak with the process's RSS flat and growing: the message differs in its figures only
    (so the ranks of a multi-process run merge into one finding naming each rank's figure), and says
    RSS's rate in both."""
    from watchdog.distributed.merge import figures_per_rank
    from watchdog.memory.sources import RssReader

    messages = {}
    for name, step in (("flat", 0), ("growing", 3 * MB)):
        reads = iter(range(10**6))
        monkeypatch.setattr(RssReader, "read", lambda self, step=step: 500 * MB + step * next(reads))
        with _watch(tmp_path / name) as run:
            loops.seed_leak(6)
        [finding] = [f for f in _memory(run) if f.code == "memory/tensor-growth"]
        messages[name] = finding.message
    assert "Process RSS over the same epochs: +0 B/epoch (median; RSS alone is noisy)." in messages["flat"]
    assert "Process RSS over the same epochs: +" in messages["growing"]
    assert messages["flat"] != messages["growing"]
    assert figures_per_rank([(0, messages["flat"]), (1, messages["growing"])]) is not None


def test_eval_without_no_grad_names_list_and_graph_memory(tmp_path):
    with _watch(tmp_path) as run:
        loops.eval_without_no_grad(4)
    (f,) = _memory(run)
    assert f.code == "memory/tensor-growth"
    assert "list `val_losses` in eval_without_no_grad()" in f.message
    assert "keeping autograd graphs alive" in f.message and "saved activations" in f.message
    assert "torch.no_grad()" in f.fix
    (holder,) = [h for h in f.evidence["holders"] if h["name"] == "val_losses"]
    assert holder["graph"]["saved_bytes"] >= 20 * MB  # tens of MB per epoch
    assert f.evidence["bytes_per_epoch"] + f.evidence["graph_bytes_per_epoch"] >= 20 * MB


def test_dict_cache_of_detached_tensors_named(tmp_path):
    with _watch(tmp_path) as run:
        loops.dict_cache(4)
    (f,) = _memory(run)
    assert "dict `store.feature_cache` in dict_cache()" in f.message
    assert "autograd" not in f.message  # detached: no graphs
    assert "Bound the cache `store.feature_cache`" in f.fix
    assert f.where.startswith("memory_loops.py:")


def test_swinging_control_has_no_memory_finding_and_trains_identically(tmp_path):
    torch.manual_seed(0)
    expected = loops.swinging_control(8)
    torch.manual_seed(0)
    with _watch(tmp_path) as run:
        got = loops.swinging_control(8)
    assert _memory(run) == []
    assert [f for f in run.findings if f.severity != "info"] == []
    for a, b in zip(expected.parameters(), got.parameters()):
        assert torch.equal(a, b)
    samples = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    epoch_samples = [e for e in samples if e["kind"] == "memory_sample" and e["data"]["at"] == "epoch_end"]
    assert len(epoch_samples) == 8
    bytes_levels = [e["data"]["census"]["bytes"] for e in epoch_samples if "census" in e["data"]]
    assert len(bytes_levels) >= 6  # every epoch at first; later ones within the census time budget
    assert max(bytes_levels) - min(bytes_levels) >= 30 * MB  # it swings by tens of MB


def test_watched_leaky_run_trains_identically(tmp_path):
    torch.manual_seed(3)
    expected = loops.seed_leak(4)
    torch.manual_seed(3)
    with _watch(tmp_path):
        got = loops.seed_leak(4)
    for a, b in zip(expected.parameters(), got.parameters()):
        assert torch.equal(a, b)


def test_census_failure_becomes_internal_error_and_training_goes_on(tmp_path, monkeypatch):
    import watchdog.memory.census as census_module

    def broken(previous=None, allowance_s=None):
        raise RuntimeError("census exploded")

    monkeypatch.setattr(census_module, "take_census", broken)  # the probe imports it at its first census
    with _watch(tmp_path) as run:
        model = loops.seed_leak(3)
    assert model is not None
    errors = [f for f in run.findings if f.code == "watchdog/internal-error"]
    assert [f.evidence["component"] for f in errors] == ["probe:memory"]


@pytest.mark.parametrize("epochs_before", [0, 1])
def test_long_epoch_growth_warned_before_the_epoch_ends(tmp_path, epochs_before):
    # A fresh process under the CLI: RSS is only a clean signal where the heap holds no memory
    # freed by earlier tests (glibc hands that out first).
    script = tmp_path / "long_epoch.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {os.path.dirname(loops.__file__)!r})\n"
        "import memory_loops, watchdog\n"
        + "watchdog.mark_epoch()\n" * epochs_before
        + "memory_loops.long_epoch(steps=200, grow=True, pause=0.003)\n"
    )
    env = dict(os.environ, WATCHDOG_MEMORY_SAMPLE_INTERVAL="0.01", PYTHONPATH=REPO)
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "watchdog", "run", "--no-dashboard", "--quiet", "--report-dir", str(out), str(script)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    found = [f for f in report["findings"] if f["code"].startswith("memory/")]
    assert [f["code"] for f in found] == ["memory/growth-within-epoch"]
    f = found[0]
    assert f["evidence"]["series"] == "rss"
    assert f["epoch"] == f["evidence"]["epoch"] == epochs_before  # before that epoch ended
    assert f["message"].startswith(f"Early warning in epoch {epochs_before}:")  # one numbering, from 0
    assert 0.5 * MB <= f["evidence"]["bytes_per_step"] <= 1.5 * MB  # 1 MB kept per step
    if epochs_before == 0:
        # In the first epoch a cache filling once looks the same: info, with that caveat.
        assert f["severity"] == "info" and "if it goes on in the next epoch, it is a leak" in f["message"]
    else:
        assert f["severity"] == "warning"


def test_long_epoch_without_growth_is_silent(tmp_path, monkeypatch):
    monkeypatch.setenv("WATCHDOG_MEMORY_SAMPLE_INTERVAL", "0.01")
    with _watch(tmp_path) as run:
        loops.long_epoch(steps=100, grow=False, pause=0.003)
    assert _memory(run) == []


def test_tensor_rebuilt_every_step_named_and_measured_at_its_real_rate(tmp_path):
    with _watch(tmp_path) as run:
        loops.concatenated_predictions(4)
    (f,) = _memory(run)
    assert "variable `all_preds` in concatenated_predictions()" in f.message
    assert "rebuilt larger every step" in f.message and "concatenate once per epoch" in f.fix
    # 2 MB of predictions an epoch: no stale copy kept alive by a locals snapshot doubles it.
    assert 1.9 * MB <= f.evidence["bytes_per_epoch"] <= 2.2 * MB


def test_sampler_thread_stops_with_the_run_even_on_an_exception(tmp_path):
    import threading

    def samplers():
        return [t for t in threading.enumerate() if t.name == "watchdog-memory-sampler" and t.is_alive()]

    with pytest.raises(ZeroDivisionError):
        with _watch(tmp_path):
            # Started without waiting for it to be scheduled (core/threads.py): listed once it is.
            for _ in range(500):
                if samplers():
                    break
                time.sleep(0.01)
            assert len(samplers()) == 1
            1 / 0
    assert samplers() == []
