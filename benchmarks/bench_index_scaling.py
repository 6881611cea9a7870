"""Index capture cost at growing dataset sizes (issue 14 item 3): per-index cost, worst stall, memory.

    python benchmarks/bench_index_scaling.py              # 1M samples (CI time: ~10 s)
    python benchmarks/bench_index_scaling.py --full       # 1M, 10M and 100M samples (~5 min, ~8 GB)
    python benchmarks/bench_index_scaling.py --sizes 1000000,10000000 [--batch 256] [--rounds 3]

Per size: a ``random_split`` half of an index-only dataset (the indices are the data), one shuffled
DataLoader over it. Unwatched passes and, in one watched session, two passes of the same loader
(the first converts the ``Subset``'s index list, the second finds it converted), alternating in one
process; each figure is the best of ``--rounds`` rounds. Printed per size:

- ``ns/index``: the pass's CPU time on the loop's thread (``time.thread_time``: other processes on
  a loaded machine do not count), watched minus unwatched, per index served (first and second
  watched pass);
- ``worst stall``: the longest single ``next()`` of the pass *excluding its first* (the first
  draws the sampler's permutation: ~0.3 s at 50M, watched or not), the ``StopIteration`` call (the
  pass end) included; beside it the unwatched pass's own worst, the loop's noise floor;
- ``peak``: the process's peak RSS during the pass above its RSS at the pass start (sampled every
  2 ms), watched and unwatched: what watching adds while the pass runs;
- ``kept``: RSS after the watched session's two passes minus before, less the same for unwatched
  passes (the Subset index table and the bitmaps the run keeps).

Wall-clock and RSS numbers: for the README and docs/internals.md, never for tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import psutil  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset, random_split  # noqa: E402

import watchdog  # noqa: E402

MB = 1 << 20


class Indices(Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, idx):
        return torch.as_tensor(idx)

    def __getitem__(self, i):
        return i


class PeakRSS:
    """The process's peak RSS above its value at the start, sampled on a thread every 2 ms."""

    def __init__(self) -> None:
        self.process = psutil.Process()

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def added(self) -> int:
        return self.peak - self.start


def one_pass(loader) -> tuple[float, float, int]:
    """(the main thread's CPU time, the worst single next() after the first in wall time, the peak RSS
    added) of one pass over ``loader``."""
    worst = 0.0
    with PeakRSS() as rss:
        t0 = time.thread_time()
        it = iter(loader)
        first = True
        while True:
            t = time.perf_counter()
            try:
                next(it)
            except StopIteration:
                worst = max(worst, time.perf_counter() - t)
                break
            if not first:
                worst = max(worst, time.perf_counter() - t)
            first = False
        cpu = time.thread_time() - t0
    return cpu, worst, rss.added


def measure(n: int, batch: int, rounds: int) -> None:
    train, _ = random_split(Indices(n), [0.5, 0.5], generator=torch.Generator().manual_seed(0))
    loader = DataLoader(train, batch_size=batch, shuffle=True, collate_fn=lambda b: b)
    samples = len(train)
    rss = psutil.Process().memory_info
    plain, plain_worst, plain_peak = [], [], []
    watched: list[list[float]] = [[], []]
    worst: list[list[float]] = [[], []]
    peak: list[list[int]] = [[], []]
    kept = []
    for _ in range(rounds):
        before = rss().rss
        for _ in range(2):
            wall, stall, added = one_pass(loader)
            plain.append(wall), plain_worst.append(stall), plain_peak.append(added)
        plain_kept = rss().rss - before
        before = rss().rss
        with tempfile.TemporaryDirectory() as tmp, watchdog.watch(report_dir=tmp, summary=False):
            for k in range(2):
                wall, stall, added = one_pass(loader)
                watched[k].append(wall), worst[k].append(stall), peak[k].append(added)
            kept.append(rss().rss - before - plain_kept)
    base = min(plain)
    print(f"{n / 1e6:5.0f}M samples ({samples} served per pass, batch {batch}): unwatched {base:6.2f} s CPU/pass, "
          f"worst stall {min(plain_worst) * 1e3:5.1f} ms, peak +{min(plain_peak) / MB:5.0f} MB", flush=True)
    for k, label in enumerate(("first watched pass ", "second watched pass")):
        print(f"    {label}: {min(watched[k]):6.2f} s CPU, {(min(watched[k]) - base) / samples * 1e9:+5.0f} ns/index, "
              f"worst stall {min(worst[k]) * 1e3:6.1f} ms, peak +{min(peak[k]) / MB:5.0f} MB", flush=True)
    print(f"    kept by the watched session after its passes: {min(kept) / MB:+.0f} MB", flush=True)


def main() -> None:
    os.environ.setdefault("WATCHDOG_MEMORY_CENSUS", "0")  # the census is item 1's: index work alone here
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--full", action="store_true", help="1M, 10M and 100M samples (minutes, ~8 GB)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=None, help="best of N rounds (default 3, 1 with --full)")
    args = ap.parse_args()
    sizes = "1000000,10000000,100000000" if args.full else args.sizes
    rounds = args.rounds or (1 if args.full else 3)
    for n in (int(x) for x in sizes.split(",")):
        measure(n, args.batch, rounds)


if __name__ == "__main__":
    main()
