"""What the memory probe costs, and where: nothing per step; the rest at epoch end or in a thread.

    python benchmarks/bench_memory.py

- RSS read: ``os.pread`` on a kept-open ``/proc/self/statm`` versus psutil's ``memory_info()``.
- census: one ``take_census()`` (``gc.get_objects()`` scan), in ms and ms per 100k tracked objects,
  at the interpreter's size after ``import torch``, with 200k extra Python objects alive, and with
  100k live tensors.
- culprit walk: ``find_holders`` on the seed's leak (two lists, 64 new tensors an epoch).

The memory probe adds nothing per step (``benchmarks/bench_step_overhead.py`` measures the whole
watchdog's per-step ratio); its sampler thread wakes at most once a second.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from watchdog.memory.census import take_census  # noqa: E402
from watchdog.memory.holders import find_holders  # noqa: E402
from watchdog.memory.sources import RssReader


def best_of(fn, number: int, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def census_ms() -> tuple[float, int]:
    take_census()
    times, census = [], None
    for _ in range(5):
        census = take_census()
        times.append(census.duration_s)
    return min(times) * 1000, census.objects_scanned


def main() -> None:
    reader = RssReader()
    process = psutil.Process()
    print(f"RSS via pread(/proc/self/statm): {best_of(reader.read, 20000) * 1e6:6.2f} µs")
    print(f"RSS via psutil memory_info():    {best_of(lambda: process.memory_info().rss, 20000) * 1e6:6.2f} µs")

    ms, objects = census_ms()
    print(f"census after import torch: {ms:6.1f} ms for {objects:,} objects ({ms / objects * 1e5:.1f} ms per 100k)")
    ballast = [[i] for i in range(200_000)]
    ms, objects = census_ms()
    print(f"census with 200k more objects: {ms:6.1f} ms for {objects:,} objects ({ms / objects * 1e5:.1f} ms per 100k)")
    del ballast
    many = [torch.zeros(1) for _ in range(100_000)]
    first = take_census()
    second = take_census(previous=first)
    print(f"census with 100k live tensors: {first.duration_s * 1000:6.1f} ms, against the previous one "
          f"{second.duration_s * 1000:6.1f} ms ({second.duration_s / 100_000 * 1e6:.1f} µs per tensor)")
    del many, first, second

    lin = torch.nn.Linear(16, 16)
    kept_losses, kept_outputs = [], []
    before = take_census()
    for _ in range(32):
        out = lin(torch.randn(8, 16))
        loss = out.pow(2).mean()
        loss.backward()
        kept_losses.append(loss)
        kept_outputs.append(out)
    diff = take_census(previous=before).compare_to(before)
    start = time.perf_counter()
    holders = find_holders(diff)
    ms = (time.perf_counter() - start) * 1000
    print(f"culprit walk: {ms:6.1f} ms for {diff.new_count} new tensors -> "
          + "; ".join(f"{h.name} ({h.tensors})" for h in holders))


if __name__ == "__main__":
    main()
