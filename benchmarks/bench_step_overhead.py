"""Per-step cost of watching: the same small CPU loop, watched and unwatched, alternating in one process.

    python benchmarks/bench_step_overhead.py [--rounds 15] [--steps 200] [--workers 0]

A tiny MLP (batch 64) on the CPU is the worst case: its step is short, so any fixed per-step cost
shows. Each round times one unwatched epoch and one watched epoch over the same DataLoader (order
alternating, one watch session per watched epoch). Two numbers, from the same rounds:

- hot path: the median time of one training step (fetch, forward, backward, optimizer step),
  watched / unwatched. This is the per-step promise.
- epoch: the whole epoch including its boundaries (pass-end index work, the epoch-end memory
  census, the evaluation pass), watched / unwatched, and the boundary cost in ms per epoch. It
  is paid once per epoch, so its share shrinks as epochs grow (``--steps``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import watchdog  # noqa: E402


def build(steps: int, workers: int):
    g = torch.Generator().manual_seed(0)
    n = steps * 64
    ds = TensorDataset(torch.randn(n + 640, 32, generator=g), torch.randint(0, 10, (n + 640,), generator=g))
    train_ds, val_ds = random_split(ds, [n, 640], generator=torch.Generator().manual_seed(0))
    train_loader = DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=workers,
                              persistent_workers=workers > 0)
    val_loader = DataLoader(val_ds, batch_size=64)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, optimizer, train_loader, val_loader


def one_epoch(model, optimizer, train_loader, val_loader) -> tuple[float, list[float]]:
    """Seconds for the whole epoch, and the duration of each training step (fetch included)."""
    model.train()
    step_times = []
    clock = time.perf_counter
    start = last = clock()
    for x, y in train_loader:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        now = clock()
        step_times.append(now - last)
        last = now
    model.eval()
    with torch.no_grad():
        for x, y in val_loader:
            model(x)
    return clock() - start, step_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least noise)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, optimizer, train_loader, val_loader = build(args.steps, args.workers)
    report_dir = Path(tempfile.mkdtemp(prefix="wd-bench-"))
    one_epoch(model, optimizer, train_loader, val_loader)  # warm-up
    step_medians: dict[str, list[float]] = {"plain": [], "watched": []}
    epochs: dict[str, list[float]] = {"plain": [], "watched": []}
    for r in range(args.rounds):
        order = ("plain", "watched") if r % 2 == 0 else ("watched", "plain")
        for kind in order:
            if kind == "plain":
                seconds, step_times = one_epoch(model, optimizer, train_loader, val_loader)
            else:
                with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False):
                    seconds, step_times = one_epoch(model, optimizer, train_loader, val_loader)
            step_medians[kind].append(statistics.median(step_times))
            epochs[kind].append(seconds)
    print(f"{args.rounds} alternating rounds, one epoch of {args.steps} steps each (batch 64, tiny MLP, "
          f"workers={args.workers}, threads={args.threads}):")
    plain, watched = step_medians["plain"], step_medians["watched"]
    ratios = [w / p for w, p in zip(watched, plain)]
    print(f"  hot path: median step unwatched {statistics.median(plain) * 1e6:7.1f} us, watched "
          f"{statistics.median(watched) * 1e6:7.1f} us ({(statistics.median(watched) - statistics.median(plain)) * 1e6:+.1f} us); "
          f"median ratio {statistics.median(ratios):.4f}")
    plain, watched = epochs["plain"], epochs["watched"]
    ratios = [w / p for w, p in zip(watched, plain)]
    print(f"  epoch:    unwatched {statistics.median(plain) * 1e3:7.1f} ms, watched {statistics.median(watched) * 1e3:7.1f} ms "
          f"(boundaries {(statistics.median(watched) - statistics.median(plain)) * 1e3:+.1f} ms/epoch); "
          f"median ratio {statistics.median(ratios):.4f}")

if __name__ == "__main__":
    main()
