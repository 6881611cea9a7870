"""Watched equals unwatched: RNG streams, compiled frames, tensor subclasses (issue 9, item 6)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import watchdog
from tests.conftest import ROOT

RNG_SCRIPT = textwrap.dedent("""
    import json, random, sys
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    watched = sys.argv[1] == "watched"
    assert "rich" not in sys.modules
    random.seed(0); np.random.seed(0); torch.manual_seed(0)

    def loop():
        model = nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        ds = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
        for _ in range(2):
            for x, y in DataLoader(ds, batch_size=8, shuffle=True):
                opt.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); opt.step()
        return model

    if watched:
        import watchdog
        with watchdog.watch(report_dir=sys.argv[2], summary=False):
            model = loop()
    else:
        model = loop()
    print(json.dumps({"random": [random.getrandbits(32) for _ in range(4)],
                      "numpy": np.random.randint(0, 2**31, 4).tolist(),
                      "torch": torch.randint(0, 2**31, (4,)).tolist(),
                      "weights": model.weight.detach().reshape(-1).tolist()}))
""")


def test_a_watched_run_leaves_every_rng_stream_as_an_unwatched_one(tmp_path):
    """rich draws from `random` when first imported; a first watch() in a fresh process must not."""
    script = tmp_path / "rng.py"
    script.write_text(RNG_SCRIPT)
    draws = {}
    for mode in ("unwatched", "watched"):
        proc = subprocess.run([sys.executable, str(script), mode, str(tmp_path / "wd")], capture_output=True,
                              text=True, timeout=180, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        draws[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert draws["watched"] == draws["unwatched"]


def _compiled_loop(model, optimizer, train_loader, val_loader, epochs=2):
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, _ in val_loader:
                model(x)


def _compile_and_train(watched: bool, report_dir):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.2), nn.Linear(16, 2))
    model.compile(backend="eager")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(96, 8, generator=g), torch.randint(0, 2, (96,), generator=g))
    train_ds, val_ds = torch.utils.data.random_split(ds, [64, 32], generator=g)
    loaders = DataLoader(train_ds, batch_size=16), DataLoader(val_ds, batch_size=8)
    run = None
    if watched:
        with watchdog.watch(report_dir=report_dir, summary=False) as run:
            _compiled_loop(model, optimizer, *loaders)
    else:
        _compiled_loop(model, optimizer, *loaders)
    frames = {k: dict(v) for k, v in counters.items() if k in ("frames", "stats", "graph_break")}
    weights = [p.detach().clone() for p in model.parameters()]
    return frames, weights, torch.rand(3), run, model


def test_model_compiled_in_place_compiles_the_same_frames_watched(tmp_path):
    """Run in a fresh process: dynamo's caches and counters are process-wide."""
    script = tmp_path / "compiled.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        import torch
        from tests.test_invisible import _compile_and_train
        frames, weights, draws, _, _ = _compile_and_train(False, sys.argv[1])
        w_frames, w_weights, w_draws, run, model = _compile_and_train(True, sys.argv[1])
        assert w_frames == frames, (w_frames, frames)
        assert all(torch.equal(a, b) for a, b in zip(weights, w_weights))
        assert torch.equal(draws, w_draws)
        # forwards still counted (8 training + 8 evaluation batches); the compiled call is restored
        import json, pathlib
        passes = [json.loads(line)["data"] for line in (pathlib.Path(sys.argv[1]) / "events.jsonl").read_text().splitlines()
                  if json.loads(line)["kind"] == "loader_pass_end"]
        forwards = (sum(p["forwards"] for p in passes), sum(p["eval_mode_forwards"] for p in passes))
        assert forwards == (16, 8), forwards
        assert [f for f in run.findings if f.severity != "info"] == [], run.findings
        assert model._compiled_call_impl.__name__ != "counted_compiled_call"
        assert not model._forward_pre_hooks
        print("ok")
    """))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "wd")], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


class CountingTensor(torch.Tensor):
    calls = 0

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        CountingTensor.calls += 1
        return super().__torch_function__(func, types, args, kwargs or {})


def test_the_memory_census_never_calls_a_tensor_subclass_torch_function():
    from watchdog.memory import census
    from watchdog.memory.holders import find_holders

    base = [torch.randn(16, 4).as_subclass(CountingTensor) for _ in range(3)]
    CountingTensor.calls = 0
    before = census.take_census()
    grown = [(torch.randn(8, 4, requires_grad=True) * 2).as_subclass(CountingTensor) for _ in range(12)]
    CountingTensor.calls = 0  # building them called it; from here on only the census runs
    after = census.take_census(before)
    diff = after.compare_to(before)
    holders = find_holders(diff, min_tensors=1)
    assert CountingTensor.calls == 0
    assert after.count - before.count >= 12
    assert any(h.name == "grown" for h in holders), [h.describe() for h in holders]
    del base, grown
