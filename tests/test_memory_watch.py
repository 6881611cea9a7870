"""Memory findings end to end: real loops under ``watchdog.watch``, real DataLoaders, report.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import memory_loops as loops
import watchdog
from watchdog.memory.growth import MB

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _watch(tmp_path):
    return watchdog.watch(report_dir=tmp_path, dashboard=False, summary=False)


def _memory(run):
    return [f for f in run.findings if f.code.startswith("memory/")]


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
    assert "by the run's last epoch (5, from `epochs` in seed_leak())" in first_message
    report = json.loads((tmp_path / "report.json").read_text())
    codes = [x["code"] for x in report["findings"]]
    assert "memory/tensor-growth" in codes


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
    import watchdog.memory.probe as probe_module

    def broken():
        raise RuntimeError("census exploded")

    monkeypatch.setattr(probe_module, "take_census", broken)
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
    assert f["epoch"] == epochs_before  # before that epoch ended
    assert 0.5 * MB <= f["evidence"]["bytes_per_step"] <= 1.5 * MB  # 1 MB kept per step
    if epochs_before == 0:
        # In the first epoch a cache filling once looks the same: info, with that caveat.
        assert f["severity"] == "info" and "epoch 2" in f["message"]
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
            assert len(samplers()) == 1
            1 / 0
    assert samplers() == []
