"""Marginal cost of each hot-path probe, measured in isolation (min of many repeats: robust to noise).

    python benchmarks/bench_probe_costs.py

- DataLoader batch: ``next()`` on a loader whose dataset does nothing (so the probe's wrapper,
  the recording generator and the per-batch counters are most of what is timed), batch of 64.
- optimizer step: ``SGD.step()`` on one 1-element parameter (the global post-step hook).
- backward: ``loss.backward()`` on a 1-element graph (the ``torch.autograd.backward`` wrapper).
- forward: a root ``nn.Linear(1, 1)`` call (the forward pre-hook on watched root models).
- pass end: converting and resolving one pass's indices (per index), done once per pass.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import watchdog  # noqa: E402


class Nothing(Dataset):
    def __len__(self):
        return 64 * 2000

    def __getitem__(self, i):
        return i


def best_of(fn, repeats: int = 15) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        times.append((time.perf_counter() - start) / n)
    return min(times)


def per_batch(loader):
    def run():
        count = 0
        for _ in loader:
            count += 1
        return count
    return run


def main() -> None:
    torch.set_num_threads(1)
    loader = DataLoader(Subset(Nothing(), range(64 * 2000)), batch_size=64, collate_fn=lambda b: b)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    p.grad = torch.zeros(1)
    lin = torch.nn.Linear(1, 1)
    x = torch.zeros(1, 1)

    def steps():
        for _ in range(5000):
            opt.step()
        return 5000

    def backwards():
        for _ in range(2000):
            (p * 2).sum().backward()
        return 2000

    def forwards():
        for _ in range(5000):
            lin(x)
        return 5000

    cases = {"DataLoader batch": per_batch(loader), "optimizer step": steps, "backward": backwards,
             "forward (root model)": forwards}
    plain = {name: best_of(fn) for name, fn in cases.items()}
    with watchdog.watch(report_dir=tempfile.mkdtemp(), summary=False, dashboard=False) as run:
        watching = {}
        for name, fn in cases.items():
            if name.startswith("forward"):
                run.loop.discover_models(watchdog.core.frames.user_frames(1))  # hook `lin` as a root model
            watching[name] = best_of(fn)
    print("marginal cost per call (best of 15 repeats):")
    for name in cases:
        print(f"  {name:22s} unwatched {plain[name] * 1e6:7.2f} us   watched {watching[name] * 1e6:7.2f} us   "
              f"added {(watching[name] - plain[name]) * 1e6:+6.2f} us")


if __name__ == "__main__":
    import watchdog.core.frames  # noqa: F401

    main()
