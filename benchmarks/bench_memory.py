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

import ctypes
import gc
import sys
import time
from dataclasses import dataclass
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


@dataclass
class CensusCost:
    """One census against the previous one (as at every epoch end after the first) with
    ``tensors`` live tensors of one element each."""

    tensors: int
    objects: int  # tracked objects the census scanned
    seconds: float  # the census against the previous one (best of the repeats)
    cpu_seconds: float  # its CPU time on this thread (best of the repeats: what a loaded machine adds, out)
    first_seconds: float  # the first census (nothing to compare with)
    transient_bytes: int  # peak RSS during the census above the RSS before it (its scan, its arrays)
    kept_bytes: int  # RSS one census holds once taken (the probe keeps the newest until the next)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _settled_rss() -> int:
    """RSS once garbage is collected and freed memory handed back (glibc's ``malloc_trim``)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return _status_kb("VmRSS") * 1024


def _peak_rss_during(fn):
    """(fn's result, the process's peak RSS while it ran): the kernel's high-water mark, reset first
    (``/proc/self/clear_refs``; Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    result = fn()
    return result, _status_kb("VmHWM") * 1024


def measure_census(n_tensors: int, repeats: int = 3) -> CensusCost:
    """Census time and memory with ``n_tensors`` live one-element tensors (Linux: reads /proc)."""
    many = [torch.zeros(1) for _ in range(n_tensors)]
    before = _settled_rss()
    previous = take_census()
    seconds, cpu, transient = [], [], 0
    for _ in range(repeats):
        start_rss = _settled_rss()
        cpu_start = time.thread_time()
        census, peak = _peak_rss_during(lambda: take_census(previous=previous))
        cpu.append(time.thread_time() - cpu_start)
        transient = max(transient, peak - start_rss)
        seconds.append(census.duration_s)
        objects = census.objects_scanned
        previous = census = None  # the probe keeps one census: the newest
        previous = take_census() if _ < repeats - 1 else None
    kept_rss = _settled_rss()
    previous = take_census()
    kept = _settled_rss() - kept_rss
    del previous
    start = time.perf_counter()
    take_census()
    first = time.perf_counter() - start
    del many
    gc.collect()
    return CensusCost(n_tensors, objects, min(seconds), min(cpu), first, transient, kept)


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
