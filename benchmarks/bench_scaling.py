"""The scaling table of issue 14 (item 6): what watchdog's boundaries cost as the program grows.

    python benchmarks/bench_scaling.py            # CI time (~2-3 min on 2 loaded cores, < 1.5 GB)
    python benchmarks/bench_scaling.py --full     # the big sizes (~15-20 min, ~7 GB at its peak)
    python benchmarks/bench_scaling.py --only census,share,index,checkpoint,run-length,latency

Every figure comes from this one process, each section calling the benchmark that owns the
measurement (nothing is measured twice in two ways):

- **Live tensors** (1k, 10k, 100k; ``--full`` adds 1M): one census against the previous one, as at
  every epoch end after the first (``bench_memory.measure_census``): wall time, CPU time of the
  census's thread, the peak RSS it adds while it scans (the kernel's high-water mark, reset before),
  and what one census keeps until the next.
- **Dataset** (1M, 10M samples; ``--full``: 1M, 10M, 100M): ``bench_index_scaling.measure``: a
  training pass over a shuffled ``random_split`` half and an evaluation pass over a nested Subset,
  watched and unwatched alternately: the pass-end index work per index (watched minus unwatched CPU),
  the worst single ``next()`` mid-pass and at the pass end, the peak RSS the pass adds, and what the
  run keeps.
- **Checkpoint** (10 MB, 100 MB; ``--full`` adds 1 GB): ``bench_checkpoint.measure_readback``: a
  model + Adam checkpoint saved to a file, then read back, compared and CRC'd as the integrity check
  does on a watched save (``mmap=True``): the read-back's time against the save's, and the anonymous
  memory each adds.
- **Run length** (1,000 epochs; ``--full``: 10,000): ``bench_run_length``: per-epoch bookkeeping at
  epochs 10, 100, 1k, 10k (a ``mark_epoch()``, a training pass's end, the whole synthetic epoch),
  the growth rule's ``EpochSeries.add``, and the run's end (report written) after 1k and 10k epochs.
- **The census's share of a run**: a watched training loop with default options, no leak, of 2 and
  20 epochs of 100 ms (``--full`` adds 1,000 of 41 ms): the censuses taken and the epoch ends' share
  of the wall time.
- **Detection latency** under the census's time budget (1% of the wall time): the budget and the
  growth rule driven on a simulated clock with this process's census cost, for 40 ms, 1 s and 60 s
  epochs; ``--full`` also runs a real leaking loop of 40 ms and of 1 s epochs and reads the epoch of
  its ``memory/tensor-growth`` finding.

Wall-clock and RSS figures: for the README and docs/internals.md, never for tests. Best of repeats
where a section repeats; on a shared machine the CPU columns are the steadier ones.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import bench_checkpoint  # noqa: E402
import bench_index_scaling  # noqa: E402
import bench_memory  # noqa: E402
import bench_run_length  # noqa: E402
import watchdog  # noqa: E402

MB = 1 << 20
SECTIONS = ("census", "share", "index", "checkpoint", "run-length", "latency")


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(flush=True)


def fmt_count(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n:,}"


def fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f} ms" if seconds >= 0.1 else f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def fmt_mb(nbytes: float, sign: bool = True) -> str:
    return f"{nbytes / MB:+.0f} MB" if sign else f"{nbytes / MB:.0f} MB"


# -- live tensors -----------------------------------------------------------------------------------
def census_section(sizes: list[int]) -> None:
    print("## Live tensors: one epoch-end census (against the previous one)\n", flush=True)
    rows = []
    for n in sizes:
        c = bench_memory.measure_census(n, repeats=1 if n >= 1_000_000 else 3)
        rows.append([fmt_count(n), f"{c.objects:,}", fmt_s(c.seconds), fmt_s(c.cpu_seconds),
                     fmt_mb(c.transient_bytes), fmt_mb(c.kept_bytes)])
    table(["live tensors", "objects scanned", "census", "its CPU", "peak RSS added while it runs",
           "kept until the next"], rows)


# -- dataset ----------------------------------------------------------------------------------------
def index_section(sizes: list[int]) -> None:
    print("## Dataset: index capture per DataLoader pass (batch 256; best of 2 rounds, 1 at 100M)\n", flush=True)
    results = []
    for n in sizes:
        r = bench_index_scaling.measure(n, 256, 1 if n >= 100_000_000 else 2)
        results.append(r)
        gc.collect()
    base = results[0]
    rows = []
    for r in results:
        u, w = r.unwatched, r.watched
        mid = max(w, key=lambda f: f.worst_mid_s)
        end = max(w, key=lambda f: f.pass_end_s)
        rows.append([
            fmt_count(r.n), f"{r.samples:,}",
            f"{r.ns_per_index(0):+.0f} / {r.ns_per_index(1):+.0f} ns",
            ("1" if r is base else f"{r.ns_per_index(0) / base.ns_per_index(0):.2f}×" if base.ns_per_index(0) > 0
             else "– (the smallest's is within noise)"),
            f"{r.capture_ns_per_index(0):.0f} / {r.capture_ns_per_index(1):.0f} ns",
            ("1" if r is base else f"{r.capture_ns_per_index(0) / base.capture_ns_per_index(0):.2f}× / "
             f"{r.capture_ns_per_index(1) / base.capture_ns_per_index(1):.2f}×"),
            f"{w[0].cpu_s / u.cpu_s:.2f}× / {w[1].cpu_s / u.cpu_s:.2f}×",
            f"{fmt_s(mid.worst_mid_s)}, CPU {fmt_s(mid.worst_mid_cpu_s)} ({fmt_s(u.worst_mid_s)})",
            f"{fmt_s(end.pass_end_s)}, CPU {fmt_s(end.pass_end_cpu_s)} ({fmt_s(u.pass_end_s)})",
            f"{fmt_s(r.eval_watched.pass_end_s)}, CPU {fmt_s(r.eval_watched.pass_end_cpu_s)} "
            f"({fmt_s(r.eval_unwatched.pass_end_s)})",
            f"{fmt_mb(max(f.peak_bytes for f in w))} ({fmt_mb(u.peak_bytes)})",
            fmt_mb(r.kept_bytes),
        ])
    table(["dataset", "served per pass", "watched − unwatched CPU per index (1st / 2nd pass)",
           "1st pass per index vs the smallest", "the capture's own CPU per index (1st / 2nd)",
           "capture per index vs the smallest (1st / 2nd)", "pass CPU watched/unwatched (1st / 2nd)",
           "worst mid-pass next() (unwatched)", "training pass end (unwatched)", "evaluation pass end (unwatched)",
           "peak RSS added during a pass (unwatched)", "kept by the run"], rows)


# -- checkpoint -------------------------------------------------------------------------------------
def checkpoint_section(sizes: list[int]) -> None:
    print("## Checkpoint: a watched save's read-back (weights_only, mmap=True, compare, CRC) vs the save\n",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="wd-bench-ckpt-", dir=os.environ.get("TMPDIR")) as tmp:
        for n in sizes:
            r = bench_checkpoint.measure_readback(n, tmp)
            rows.append([f"{r.size_bytes / 1e6:,.0f} MB", fmt_s(r.save_s), fmt_s(r.verify_s),
                         f"{r.verify_s / r.save_s:.2f}×", fmt_mb(r.verify_anon_bytes), fmt_mb(r.save_anon_bytes)])
            gc.collect()
    table(["checkpoint", "save", "read-back + compare + CRC", "read-back / save", "anonymous memory added by the read-back",
           "(by the save)"], rows)


# -- run length -------------------------------------------------------------------------------------
def run_length_section(epochs: int) -> None:
    print(f"## Run length: per-epoch bookkeeping over a {epochs:,}-epoch run (census synthetic, every epoch)\n",
          flush=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # least noise
    try:
        marked = bench_run_length.measure_run_length(epochs, "mark")
        passes = bench_run_length.measure_run_length(epochs, "loader")
        series = bench_run_length.measure_series_cost(epochs)
        ends = {epochs: marked.run_end_s}
        for shorter in (1_000,):
            if shorter < epochs:
                ends[shorter] = bench_run_length.measure_run_length(shorter, "mark").run_end_s
    finally:
        torch.set_num_threads(threads)
    rows = [[f"{row:,}", fmt_s(marked.boundary_s[row]), fmt_s(passes.boundary_s[row]), fmt_s(marked.whole_s[row]),
             fmt_s(series[row])] for row in marked.boundary_s]
    table(["epoch", "mark_epoch()", "training pass end", "whole epoch (step, eval forward, mark)",
           "EpochSeries.add (all verdicts)"], rows)
    print("run end (checks finished, report.json and report.html written): "
          + ", ".join(f"after {n:,} epochs {fmt_s(s)}" for n, s in sorted(ends.items())) + "\n", flush=True)


# -- detection latency ------------------------------------------------------------------------------
def simulate_latency(epoch_s: float, census_s: float, other_s: float, blocks: int,
                     leak: int = 16, max_epochs: int = 200_000) -> tuple[int | None, int, float]:
    """A leak of ``leak`` tensors every epoch from the first, under the census's budget on a simulated
    clock (each epoch ``epoch_s``, each census ``census_s``, every epoch end ``other_s`` more; a fresh
    process: the first census predicted from ``blocks``, stopped at its allowance when that guess is
    low and estimated 1.2x its cost, as measured (0.7-1.4x); the heap grows by 4 blocks per kept tensor, as a
    real leak's does), judged by the growth rule itself.
    Returns (the epoch, 1-based, at whose end the leak is reported, the censuses taken, the epoch
    ends' share of the wall time)."""
    import watchdog.memory.budget as budget_module
    from watchdog.memory.growth import EpochSample, EpochSeries

    now = [1000.0]
    saved = list(budget_module._measured_s_per_block)
    budget_module._measured_s_per_block.clear()
    try:
        heap = [blocks]
        budget = budget_module.CensusBudget(clock=lambda: now[0], blocks=lambda: heap[0])
        series = EpochSeries()
        for epoch in range(1, max_epochs + 1):
            now[0] += epoch_s
            heap[0] += 4 * leak
            started = now[0]
            count = None
            if budget.census_due():
                allowance = budget.census_allowance()
                if census_s > allowance:  # stopped at its allowance; the estimate errs high, as measured
                    now[0] += allowance
                    budget.census_stopped(allowance, census_s * 1.2)
                else:
                    now[0] += census_s
                    budget.census_taken(census_s)
                    count = 10_000 + leak * epoch
            now[0] += other_s
            budget.spend(now[0] - started)
            verdicts = series.add(EpochSample(epoch=epoch, steps=epoch, tensor_count=count))
            if any(v.series == "tensors" for v in verdicts):
                return epoch, budget.censuses, budget.share()
        return None, budget.censuses, budget.share()
    finally:
        budget_module._measured_s_per_block[:] = saved


def real_latency(epoch_s: float, max_epochs: int) -> dict:
    """A watched loop of ``epoch_s`` epochs (a sleep and one optimizer step) that keeps 16 new
    tensors each epoch, census within its budget: the epoch (1-based count) at whose end
    ``memory/tensor-growth`` is reported, the censuses taken, their cost, the epoch ends' share."""
    model = nn.Linear(4, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    kept: list[torch.Tensor] = []
    found = None
    started = time.perf_counter()
    os.environ.pop("WATCHDOG_MEMORY_CENSUS", None)
    with tempfile.TemporaryDirectory(prefix="wd-bench-") as tmp:
        with watchdog.watch(report_dir=tmp, dashboard=False, summary=False) as run:
            probe = next(p for p in run.probes if p.name == "memory")
            for epoch in range(1, max_epochs + 1):
                start = time.perf_counter()
                optimizer.zero_grad()
                model(torch.ones(2, 4)).sum().backward()
                optimizer.step()
                kept.extend(torch.zeros(1) for _ in range(16))
                time.sleep(max(0.0, epoch_s - (time.perf_counter() - start)))
                watchdog.mark_epoch()
                if any(f.code == "memory/tensor-growth" for f in run.findings):
                    found = epoch
                    break
            budget = probe.budget
            result = {"epoch": found, "censuses": budget.censuses, "census_s": budget._census_s,
                      "share": budget.share(), "wall_s": time.perf_counter() - started}
    return result


def latency_section(full: bool) -> None:
    print("## Detection latency of a leak under the census budget (1% of the wall time)\n", flush=True)
    # This process's census cost now, and what an epoch end costs besides it (a watched run, no census).
    bench_memory.take_census()
    census_s = min(bench_memory.take_census().duration_s for _ in range(3))
    blocks = sys.getallocatedblocks()
    os.environ["WATCHDOG_MEMORY_CENSUS"] = "0"
    try:
        with tempfile.TemporaryDirectory(prefix="wd-bench-") as tmp:
            with watchdog.watch(report_dir=tmp, dashboard=False, summary=False) as run:
                probe = next(p for p in run.probes if p.name == "memory")
                for _ in range(200):
                    watchdog.mark_epoch()
                other_s = probe.budget.spent_s / 200
    finally:
        os.environ.pop("WATCHDOG_MEMORY_CENSUS", None)
    print(f"simulated on this process's figures: census {fmt_s(census_s)} ({blocks:,} heap blocks), "
          f"other epoch-end work {fmt_s(other_s)}; and the docs' 15 ms / 78 ms censuses:\n")
    rows = []
    for epoch_s in (0.04, 1.0, 60.0):
        row = [fmt_s(epoch_s)]
        for c in (census_s, 0.015, 0.078):
            epoch, censuses, share = simulate_latency(epoch_s, c, other_s, blocks)
            if epoch is None:
                row.append("not reported")
            else:
                row.append(f"epoch {epoch:,} ({fmt_s(epoch * epoch_s)}; {censuses} censuses; {share * 100:.2f}%)")
        rows.append(row)
    table(["epoch length", f"census {fmt_s(census_s)} (this process)", "census 15 ms", "census 78 ms"], rows)
    if full:
        rows = []
        for epoch_s, max_epochs in ((0.04, 6000), (1.0, 100)):
            r = real_latency(epoch_s, max_epochs)
            rows.append([fmt_s(epoch_s), f"epoch {r['epoch']}" if r["epoch"] else f"not within {max_epochs}",
                         str(r["censuses"]), fmt_s(r["census_s"] or 0.0), f"{r['share'] * 100:.2f}%",
                         fmt_s(r["wall_s"])])
        print("real leaking loops (16 tensors kept per epoch, census within its budget):\n")
        table(["epoch length", "reported at the end of", "censuses", "last census", "epoch ends' share", "wall"], rows)


# -- the census's share of a run ---------------------------------------------------------------------
def census_share(epochs: int, epoch_s: float, batches: int = 2) -> dict:
    """A watched training loop with default options (census within its budget), no leak: each epoch
    a DataLoader pass of ``batches`` batches of a small MLP, padded by a sleep to ``epoch_s``. The
    censuses taken, the last one's cost, and what the epoch ends cost as a share of the run."""
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(64 * batches, 32, generator=g),
                                      torch.randint(0, 10, (64 * batches,), generator=g)), batch_size=64)
    model = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    os.environ.pop("WATCHDOG_MEMORY_CENSUS", None)
    with tempfile.TemporaryDirectory(prefix="wd-bench-") as tmp:
        with watchdog.watch(report_dir=tmp, dashboard=False, summary=False) as run:
            probe = next(p for p in run.probes if p.name == "memory")
            started = time.perf_counter()
            for _ in range(epochs):
                start = time.perf_counter()
                for x, y in loader:
                    optimizer.zero_grad(set_to_none=True)
                    nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()
                time.sleep(max(0.0, epoch_s - (time.perf_counter() - start)))
            budget = probe.budget
            result = {"censuses": budget.censuses, "stopped": budget.stopped, "census_s": budget._census_s or 0.0,
                      "spent_s": budget.spent_s, "share": budget.share(), "loop_s": time.perf_counter() - started}
        samples = [json.loads(line)["data"] for line in (Path(tmp) / "events.jsonl").read_text().splitlines()
                   if '"memory_sample"' in line]
        result["attempts"] = [
            (d["epoch"], f"stopped (estimated {fmt_s(d['census_stopped']['estimated_s'])})", d["census_stopped"]["seconds"])
            if "census_stopped" in d else (d["epoch"], "census", d["census"]["duration_ms"] / 1e3)
            for d in samples if "census" in d or "census_stopped" in d]
        return result


def share_section(full: bool) -> None:
    print("## The census's share of a run (default options, no leak)\n", flush=True)
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the epochs' own work stays well inside their length
    try:
        results = [(epochs, epoch_s, census_share(epochs, epoch_s))
                   for epochs, epoch_s in ((2, 0.1), (20, 0.1)) + (((1_000, 0.041),) if full else ())]
    finally:
        torch.set_num_threads(threads)
    for epochs, epoch_s, r in results:
        rows.append([f"{epochs:,} × {fmt_s(epoch_s)}", fmt_s(r["loop_s"]), f"{r['censuses']} ({r['stopped']} stopped)",
                     fmt_s(r["census_s"]) if r["censuses"] else "–", fmt_s(r["spent_s"]), f"{r['share'] * 100:.2f}%",
                     ", ".join(f"{epoch}: {what} {fmt_s(s or 0.0)}" for epoch, what, s in r["attempts"]) or "–"])
    table(["epochs", "loop", "censuses (stopped at the allowance)", "last census", "all epoch ends",
           "their share of the run", "attempts (epoch: census or stopped, its cost)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true",
                        help="1M tensors, 100M samples, a 1 GB checkpoint, 10,000 epochs, real leak runs")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    args = parser.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n", flush=True)
    started = time.perf_counter()
    if "census" in only:
        census_section([1_000, 10_000, 100_000] + ([1_000_000] if args.full else []))
    if "share" in only:
        share_section(args.full)
    if "latency" in only:
        latency_section(args.full)
    if "run-length" in only:
        run_length_section(10_000 if args.full else 1_000)
    if "checkpoint" in only:
        checkpoint_section([10_000_000, 100_000_000] + ([1_000_000_000] if args.full else []))
    if "index" in only:
        index_section([1_000_000, 10_000_000] + ([100_000_000] if args.full else []))
    print(f"({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
