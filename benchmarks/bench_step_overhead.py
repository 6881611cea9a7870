"""Per-step cost of watching: the same small CPU loop, watched and unwatched, alternating in one process.

    python benchmarks/bench_step_overhead.py [--rounds 15] [--steps 200] [--workers 0]

A tiny MLP (batch 64) on the CPU is the worst case: its step is short, so any fixed per-step cost
shows. Each round times one unwatched pass and one watched pass over the same DataLoader (order
alternating), and the script prints the median ratio watched/unwatched and the per-step difference.
Session start/stop is outside the timed region; index conversion at the end of each pass is inside.
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


def one_epoch(model, optimizer, train_loader, val_loader) -> tuple[float, float, int]:
    model.train()
    steps = 0
    start, cpu_start = time.perf_counter(), time.thread_time()
    for x, y in train_loader:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        steps += 1
    model.eval()
    with torch.no_grad():
        for x, y in val_loader:
            model(x)
    return time.perf_counter() - start, time.thread_time() - cpu_start, steps


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
    times: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in ("plain", "watched")}
    for r in range(args.rounds):
        order = ("plain", "watched") if r % 2 == 0 else ("watched", "plain")
        for kind in order:
            if kind == "plain":
                wall, cpu, steps = one_epoch(model, optimizer, train_loader, val_loader)
            else:
                with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False):
                    wall, cpu, steps = one_epoch(model, optimizer, train_loader, val_loader)
            times[kind]["wall"].append(wall / steps)
            times[kind]["cpu"].append(cpu / steps)
    print(f"per-step, {args.rounds} alternating rounds x {args.steps} steps (batch 64, tiny MLP, "
          f"workers={args.workers}, threads={args.threads}):")
    for clock in ("wall", "cpu"):
        plain, watched = times["plain"][clock], times["watched"][clock]
        ratios = [w / p for w, p in zip(watched, plain)]
        p_med, w_med = statistics.median(plain), statistics.median(watched)
        print(f"  {clock:4s}: unwatched {p_med * 1e6:7.1f} us  watched {w_med * 1e6:7.1f} us  "
              f"difference {(w_med - p_med) * 1e6:+6.1f} us/step  median ratio {statistics.median(ratios):.4f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
