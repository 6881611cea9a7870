"""Index capture cost at growing dataset sizes (issue 14 item 3): per-index cost and worst stall.

    python benchmarks/bench_index_scaling.py [--sizes 1000000,10000000] [--batch 256]

A watched pass over a ``random_split`` half of an index-only dataset (the indices are the data),
one pass each size. Prints the pass's per-index overhead (watched minus unwatched) and the longest
single ``__next__`` call (the worst stall: a flush, or the pass-end work at the last batch).
Wall-clock numbers: for the README, never for tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset, random_split  # noqa: E402

import watchdog  # noqa: E402


class Indices(Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, idx):
        return torch.as_tensor(idx)

    def __getitem__(self, i):
        return i


def one_pass(loader) -> tuple[float, float]:
    worst = 0.0
    t0 = time.perf_counter()
    it = iter(loader)
    while True:
        t = time.perf_counter()
        try:
            next(it)
        except StopIteration:
            worst = max(worst, time.perf_counter() - t)
            break
        worst = max(worst, time.perf_counter() - t)
    return time.perf_counter() - t0, worst


def main() -> None:
    os.environ.setdefault("WATCHDOG_MEMORY_CENSUS", "0")  # the census is item 1's: index work alone here
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    for n in (int(x) for x in args.sizes.split(",")):
        train, _ = random_split(Indices(n), [0.5, 0.5], generator=torch.Generator().manual_seed(0))
        loader = DataLoader(train, batch_size=args.batch, shuffle=True, collate_fn=lambda b: b)
        plain, plain_worst = one_pass(loader)
        with tempfile.TemporaryDirectory() as tmp, watchdog.watch(report_dir=tmp, summary=False):
            watched, worst = one_pass(loader)
        samples = len(train)
        print(f"{n / 1e6:6.0f}M samples ({samples} in the pass, batch {args.batch}): unwatched {plain:6.2f} s, "
              f"watched {watched:6.2f} s, +{(watched - plain) / samples * 1e9:6.0f} ns/index, worst stall "
              f"{worst * 1e3:7.1f} ms (unwatched {plain_worst * 1e3:5.1f} ms)", flush=True)


if __name__ == "__main__":
    main()
