"""Index capture cost at growing dataset sizes (issue 14 item 3): per-index cost, worst stall, memory.

    python benchmarks/bench_index_scaling.py              # 1M samples (CI time: ~10 s)
    python benchmarks/bench_index_scaling.py --full       # 1M, 10M and 100M samples (~5 min, ~8 GB)
    python benchmarks/bench_index_scaling.py --sizes 1000000,10000000 [--batch 256] [--rounds 3]

Per size: a ``random_split`` half of an index-only dataset (the indices are the data), a training
DataLoader over it in a shuffled order (a list of indices the benchmark holds, as ``sampler``:
``RandomSampler`` draws a new permutation at each pass's first batch and frees it at its last, ~0.3 s
and ~4 s for 50M Python ints, watched or not, which would hide the flushes and the pass end), and an evaluation DataLoader over 1% of the other half (a Subset of
a Subset). Unwatched passes and, in one watched session, two training passes of the same loader
(the first converts the ``Subset``'s index list, the second finds it converted) and one evaluation
pass (its end compares it with training), alternating in one process; each figure is the best of
``--rounds`` rounds. Printed per size:

- ``ns/index``: the pass's CPU time on the loop's thread (``time.thread_time``: other processes on
  a loaded machine do not count), watched minus unwatched, per index served (first and second
  watched pass);
- ``capture``: of that, the CPU time inside the index capture's flushes and pass end (timed around
  each call on the loop's thread, per index served): what watching adds, without the noise of the
  whole pass's difference (the per-batch append and count, ~1 ns per index at batch 256, left out);
- ``worst mid-pass next()``: the longest single ``next()`` of the pass, neither its first nor its
  last two: a flush shows here (in brackets its CPU time on the loop's thread, which what other
  processes on a loaded machine do leaves out);
- ``pass end``: the last two ``next()`` calls, the last batch and the one that raises
  ``StopIteration``: the last flush and the pass-end work when watched (the union with the
  training set, the comparison with the evaluation sets, the epoch end); in brackets what watching
  added;
- ``peak``: the process's peak RSS during the pass above its RSS at the pass start (sampled every
  2 ms), watched and unwatched: what watching adds while the pass runs;
- ``kept``: RSS at the end of the watched session minus RSS once the run is gone, freed memory
  handed back to the system first (``malloc_trim``): the Subset index tables and the bitmaps the
  run keeps.

The garbage collector is off during each pass (collected before it): at 10M samples and more, its
full collections stall the unwatched loop for 0.3-4 s (it walks the Subset's and the sampler's
index lists), which would hide everything else. Wall-clock and RSS numbers: for the README and docs/internals.md, never for tests.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import psutil  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset, Subset, random_split  # noqa: E402

import watchdog  # noqa: E402
from watchdog.overlap import capture  # noqa: E402

MB = 1 << 20
try:
    _libc = ctypes.CDLL("libc.so.6")  # glibc: malloc_trim hands freed memory back, so RSS reads what is held
except OSError:
    _libc = None


class Indices(Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, idx):
        return torch.as_tensor(idx)

    def __getitem__(self, i):
        return i


class CaptureClock:
    """The loop thread's CPU time inside the index capture's bulk work (``PassIndices.flush`` and
    ``end``), summed while in use: the benchmark wraps the two methods, watchdog is unchanged."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.depth = 0

    def __enter__(self) -> "CaptureClock":
        self.saved = {name: getattr(capture.PassIndices, name) for name in ("flush", "end")}
        for name, method in self.saved.items():
            setattr(capture.PassIndices, name, self._timed(method))
        return self

    def _timed(self, method):
        clock = time.thread_time

        def timed(*args, **kwargs):
            if self.depth:  # the pass end's own last flush: counted once, in the end's time
                return method(*args, **kwargs)
            self.depth += 1
            start = clock()
            try:
                return method(*args, **kwargs)
            finally:
                self.cpu += clock() - start
                self.depth -= 1
        return timed

    def __exit__(self, *exc: object) -> None:
        for name, method in self.saved.items():
            setattr(capture.PassIndices, name, method)


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


def one_pass(loader) -> tuple[float, float, float, int, float, float, float]:
    """One pass over ``loader``: (the loop thread's CPU time, the worst single mid-pass ``next()`` in
    wall time, the pass end: its last two ``next()`` calls, the peak RSS added, the same two
    ``next()`` figures in the loop thread's CPU time: what other processes on a loaded machine add
    to the wall time, out, and the CPU time inside the index capture's flushes and pass end)."""
    calls: list[float] = []
    cpu_calls: list[float] = []
    wall, cpu_clock = time.perf_counter, time.thread_time
    gc.collect()
    gc.disable()  # its full collections (seconds at 50M samples, watched or not) would hide the rest
    with PeakRSS() as rss, CaptureClock() as captured:
        t0 = cpu_clock()
        it = iter(loader)
        while True:
            t, c = wall(), cpu_clock()
            try:
                next(it)
            except StopIteration:
                calls.append(wall() - t)
                cpu_calls.append(cpu_clock() - c)
                break
            calls.append(wall() - t)
            cpu_calls.append(cpu_clock() - c)
        cpu = cpu_clock() - t0
    gc.enable()
    return (cpu, max(calls[1:-2], default=0.0), sum(calls[-2:]), rss.added,
            max(cpu_calls[1:-2], default=0.0), sum(cpu_calls[-2:]), captured.cpu)


@dataclass
class PassFigures:
    """One pass, the best of its rounds: the loop thread's CPU time, the worst mid-pass ``next()``,
    the pass end (its last two ``next()`` calls), all in seconds, the peak RSS added (bytes), and
    the worst mid-pass ``next()`` and the pass end again in the loop thread's CPU time, and the CPU
    time inside the index capture's flushes and pass end (0 unwatched)."""

    cpu_s: float
    worst_mid_s: float
    pass_end_s: float
    peak_bytes: int
    worst_mid_cpu_s: float
    pass_end_cpu_s: float
    capture_cpu_s: float


@dataclass
class IndexScaling:
    """What :func:`measure` found for one dataset size."""

    n: int  # samples in the base dataset
    samples: int  # served per training pass (its half)
    batch: int
    eval_samples: int
    unwatched: PassFigures
    watched: tuple[PassFigures, PassFigures]  # first (the Subset converts) and second training pass
    eval_unwatched: PassFigures
    eval_watched: PassFigures
    kept_bytes: int  # held by the watched session after its passes

    def ns_per_index(self, k: int) -> float:
        """Watched minus unwatched CPU per index served, training pass ``k`` (0: first, 1: second)."""
        return (self.watched[k].cpu_s - self.unwatched.cpu_s) / self.samples * 1e9

    def capture_ns_per_index(self, k: int) -> float:
        """The index capture's own CPU (its flushes and pass end) per index served, training pass ``k``."""
        return self.watched[k].capture_cpu_s / self.samples * 1e9


def measure(n: int, batch: int = 256, rounds: int = 3) -> IndexScaling:
    train, val = random_split(Indices(n), [0.5, 0.5], generator=torch.Generator().manual_seed(0))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(1)).tolist()
    loader = DataLoader(train, batch_size=batch, sampler=order, collate_fn=lambda b: b)
    held_out = Subset(val, range(len(val) // 100))  # a nested Subset: 1% of the other half
    eval_loader = DataLoader(held_out, batch_size=batch, collate_fn=lambda b: b)
    watchdog.loader_role(loader, "train")
    watchdog.loader_role(eval_loader, "eval")
    samples = len(train)
    process = psutil.Process()

    def rss() -> int:
        gc.collect()
        if _libc is not None:
            _libc.malloc_trim(0)
        return process.memory_info().rss

    plain: list[tuple] = []
    plain_eval: list[tuple] = []
    watched: list[list[tuple]] = [[], []]
    watched_eval: list[tuple] = []
    kept = []
    census = os.environ.get("WATCHDOG_MEMORY_CENSUS")
    os.environ["WATCHDOG_MEMORY_CENSUS"] = "0"  # the census is item 1's: index work alone here
    try:
        for _ in range(rounds):
            for _ in range(2):
                plain.append(one_pass(loader))
            plain_eval.append(one_pass(eval_loader))
            with tempfile.TemporaryDirectory() as tmp:
                with watchdog.watch(report_dir=tmp, summary=False, dashboard=False) as run:
                    for k in range(2):
                        watched[k].append(one_pass(loader))
                    watched_eval.append(one_pass(eval_loader))
                    held = rss()
                assert not [f for f in run.findings if f.code.startswith("overlap/")], run.findings
                del run
                kept.append(held - rss())
    finally:
        if census is None:
            os.environ.pop("WATCHDOG_MEMORY_CENSUS", None)
        else:
            os.environ["WATCHDOG_MEMORY_CENSUS"] = census

    def best(runs: list[tuple]) -> PassFigures:
        return PassFigures(*(min(column) for column in zip(*runs)))

    return IndexScaling(n=n, samples=samples, batch=batch, eval_samples=len(held_out), unwatched=best(plain),
                        watched=(best(watched[0]), best(watched[1])), eval_unwatched=best(plain_eval),
                        eval_watched=best(watched_eval), kept_bytes=min(kept))


def print_measure(r: IndexScaling) -> None:
    u = r.unwatched
    print(f"{r.n / 1e6:5.0f}M samples ({r.samples} served per training pass, batch {r.batch}); unwatched: "
          f"{u.cpu_s:6.2f} s CPU/pass, worst mid-pass next() {u.worst_mid_s * 1e3:6.1f} ms, pass end "
          f"{u.pass_end_s * 1e3:6.1f} ms, peak +{u.peak_bytes / MB:5.0f} MB", flush=True)
    for k, label in enumerate(("first watched pass ", "second watched pass")):
        w = r.watched[k]
        print(f"    {label}: {w.cpu_s:6.2f} s CPU, {r.ns_per_index(k):+5.0f} ns/index "
              f"(capture {r.capture_ns_per_index(k):3.0f}), "
              f"worst mid-pass next() {w.worst_mid_s * 1e3:6.1f} ms (CPU {w.worst_mid_cpu_s * 1e3:5.1f}), pass end "
              f"{w.pass_end_s * 1e3:6.1f} ms (CPU {w.pass_end_cpu_s * 1e3:5.1f}; "
              f"{(w.pass_end_s - u.pass_end_s) * 1e3:+6.1f} over unwatched), peak +{w.peak_bytes / MB:5.0f} MB",
              flush=True)
    e_last, w_last = r.eval_unwatched.pass_end_s, r.eval_watched.pass_end_s
    print(f"    evaluation pass ({r.eval_samples} samples, compared with training): pass end {w_last * 1e3:6.1f} ms "
          f"({(w_last - e_last) * 1e3:+6.1f})", flush=True)
    print(f"    kept by the watched session after its passes: {r.kept_bytes / MB:+.0f} MB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--full", action="store_true", help="1M, 10M and 100M samples (minutes, ~8 GB)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=None, help="best of N rounds (default 3, 1 with --full)")
    args = ap.parse_args()
    sizes = "1000000,10000000,100000000" if args.full else args.sizes
    rounds = args.rounds or (1 if args.full else 3)
    for n in (int(x) for x in sizes.split(",")):
        print_measure(measure(n, args.batch, rounds))


if __name__ == "__main__":
    main()
