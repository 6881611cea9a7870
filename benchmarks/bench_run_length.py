"""What a boundary costs as a run grows long, and what watching costs a whole short run.

    python benchmarks/bench_run_length.py [--epochs 10000] [--rounds 5]

Two measurements, each from one process:

- **Per-epoch boundary cost at epochs 10, 100, 1,000 and 10,000.** One watched session marks
  epochs with ``watchdog.mark_epoch()``; each epoch is one optimizer step of a tiny model, one
  ``no_grad`` forward of it (an evaluation point, so the evaluation-cadence check closes an evaluated
  window) and the mark. The live-tensor census is replaced by a synthetic one (a flat census that
  costs nothing and is taken at every epoch), so what is timed is the bookkeeping every epoch end
  pays: the memory sample and the growth rule's series, the cadence windows, the event log. Two
  figures per row, medians over the epochs around it: ``mark_epoch()`` alone (the epoch_end
  handlers), and the whole synthetic epoch (step, forward, mark; the cadence window closes at the
  next step). A run-length-independent boundary shows as a flat column.
- **Whole-run A/B.** A toy training run (tiny MLP, batch 64, ~100 ms epochs, an evaluation pass per
  epoch) of 2 and of 20 epochs, watched (default options: census within its time budget, report
  written) and unwatched, alternating in one process; the ratio of the median times, start and
  report included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import watchdog  # noqa: E402
import watchdog.memory.census as memory_census  # noqa: E402  (the probe imports take_census from it at each census)
from watchdog.memory.census import Census, IdSet  # noqa: E402

ROWS = (10, 100, 1_000, 10_000)


def synthetic_census(previous: Census | None = None, allowance_s: float | None = None) -> Census:
    """A flat census taken instantly: 1,000 tensors, 4 MB, nothing new."""
    return Census(taken_at=time.monotonic(), objects_scanned=0, duration_s=0.0, count=1000, bytes=4 << 20,
                  graph_count=0, graph_bytes=0, by_key={}, storages=IdSet(),
                  previous_taken_at=previous.taken_at if previous is not None else None)


@dataclass
class RunLength:
    """Per-epoch boundary cost along one synthetic run (medians of the epochs around each row)."""

    epochs: int
    by: str  # "mark": epochs marked with mark_epoch(); "loader": each epoch a training DataLoader pass
    boundary_s: dict[int, float]  # row -> mark_epoch() alone, or the training pass's end (its last next())
    whole_s: dict[int, float]  # row -> the whole synthetic epoch
    run_end_s: float  # leaving the watched block: the checks' finish, report.json, report.html


def measure_run_length(epochs: int, by: str = "mark") -> RunLength:
    """One watched synthetic run of ``epochs`` epochs (see the module's docstring), the census
    replaced by a flat synthetic one taken at every epoch end. ``by="loader"``: each epoch is one
    pass over a one-batch training DataLoader instead of a ``mark_epoch()``, and the pass end (the
    ``next()`` that raises ``StopIteration``: the pass-end index work and the epoch end) is timed."""
    rows = [r for r in ROWS if r <= epochs]
    model = nn.Linear(8, 8)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(4, 8)
    loader = DataLoader(TensorDataset(torch.randn(4, 8)), batch_size=4)
    real_census = memory_census.take_census
    memory_census.take_census = synthetic_census
    os.environ["WATCHDOG_MEMORY_CENSUS"] = "every-epoch"
    marks: list[float] = []
    whole: list[float] = []
    clock = time.perf_counter
    try:
        with tempfile.TemporaryDirectory(prefix="wd-bench-") as tmp:
            block = watchdog.watch(report_dir=Path(tmp) / "wd", dashboard=False, summary=False)
            block.__enter__()
            try:
                for _ in range(epochs):
                    start = clock()
                    if by == "loader":
                        batches = iter(loader)
                        (xb,) = next(batches)
                    else:
                        xb = x
                    optimizer.zero_grad(set_to_none=True)
                    model(xb).sum().backward()
                    optimizer.step()
                    if by == "loader":
                        before_mark = clock()
                        for _ in batches:  # the pass ends: StopIteration
                            pass
                        end = clock()
                        with torch.no_grad():  # evaluation after the training pass, as a loop does
                            model(x)
                    else:
                        with torch.no_grad():
                            model(x)
                        before_mark = clock()
                        watchdog.mark_epoch()
                        end = clock()
                    marks.append(end - before_mark)
                    whole.append(clock() - start)
            except BaseException:
                block.__exit__(*sys.exc_info())
                raise
            leaving = clock()
            block.__exit__(None, None, None)
            run_end = clock() - leaving
    finally:
        memory_census.take_census = real_census
        os.environ.pop("WATCHDOG_MEMORY_CENSUS", None)

    def around(values: list[float], row: int) -> float:
        lo, hi = max(0, row - 10), min(epochs, row + 10)
        return statistics.median(values[min(lo, hi - 1):hi])

    return RunLength(epochs, by, {r: around(marks, r) for r in rows}, {r: around(whole, r) for r in rows}, run_end)


def measure_series_cost(epochs: int) -> dict[int, float]:
    """``EpochSeries.add`` (which returns the verdicts on every series) at each row of a run of
    ``epochs`` epoch-end samples with a census and RSS each: seconds, medians of the epochs around."""
    from watchdog.memory.growth import MB, EpochSample, EpochSeries

    series = EpochSeries()
    times: list[float] = []
    clock = time.perf_counter
    for epoch in range(1, epochs + 1):
        sample = EpochSample(epoch=epoch, steps=epoch * 10, tensor_count=1000 + epoch % 5,
                             tensor_bytes=(4 << 20) + epoch % 3, rss=800 * MB + (epoch % 7) * MB)
        start = clock()
        series.add(sample)
        times.append(clock() - start)
    return {r: statistics.median(times[max(0, r - 11):r + 9]) for r in ROWS if r <= epochs}


def run_length_table(epochs: int) -> None:
    result = measure_run_length(epochs)
    print(f"per-epoch boundary cost over a {epochs:,}-epoch run (medians of the epochs around each):")
    print(f"  {'epoch':>7}  {'mark_epoch()':>13}  {'whole epoch':>12}")
    for row in result.boundary_s:
        print(f"  {row:>7,}  {result.boundary_s[row] * 1e6:>10.1f} µs  {result.whole_s[row] * 1e6:>9.1f} µs")
    print(f"  run end (report written): {result.run_end_s:.2f} s")


def build_toy(steps: int):
    g = torch.Generator().manual_seed(0)
    n = steps * 64
    ds = TensorDataset(torch.randn(n + 640, 32, generator=g), torch.randint(0, 10, (n + 640,), generator=g))
    train_ds, val_ds = random_split(ds, [n, 640], generator=torch.Generator().manual_seed(0))
    return DataLoader(train_ds, batch_size=64, shuffle=True), DataLoader(val_ds, batch_size=64)


def toy_run(epochs: int, loaders, watched: bool, report_dir: Path) -> float:
    train_loader, val_loader = loaders
    torch.manual_seed(0)
    start = time.perf_counter()

    def train() -> None:
        model = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(epochs):
            model.train()
            for x, y in train_loader:
                optimizer.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                for x, _ in val_loader:
                    model(x)

    if watched:
        with watchdog.watch(report_dir=report_dir, dashboard=False, summary=False):
            train()
    else:
        train()
    return time.perf_counter() - start


def whole_run_ab(rounds: int, epoch_ms: float) -> None:
    with tempfile.TemporaryDirectory(prefix="wd-bench-") as tmp:
        report_dir = Path(tmp) / "wd"
        probe = build_toy(20)
        toy_run(1, probe, False, report_dir)  # warm-up: first-touch costs of both paths
        toy_run(1, probe, True, report_dir)
        per_step = min(toy_run(1, probe, False, report_dir) for _ in range(3)) / 24  # 20 steps and 10 evaluation batches
        steps = max(10, round(epoch_ms / 1e3 / per_step) - 10)
        loaders = build_toy(steps)
        plain_epoch = min(toy_run(1, loaders, False, report_dir) for _ in range(3))
        print(f"whole-run A/B (tiny MLP, batch 64, {steps} steps = {plain_epoch * 1e3:.0f} ms per epoch unwatched, "
              f"{rounds} alternating rounds, start and report included):")
        for epochs in (2, 20):
            times: dict[bool, list[float]] = {False: [], True: []}
            for r in range(rounds):
                for watched in ((False, True) if r % 2 == 0 else (True, False)):
                    times[watched].append(toy_run(epochs, loaders, watched, report_dir))
            plain, watched = statistics.median(times[False]), statistics.median(times[True])
            print(f"  {epochs:>2} epochs: unwatched {plain:6.3f} s, watched {watched:6.3f} s, ratio {watched / plain:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10_000, help="length of the synthetic run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the whole-run A/B")
    parser.add_argument("--epoch-ms", type=float, default=100.0, help="length of a toy epoch, unwatched")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least noise)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run_length_table(args.epochs)
    whole_run_ab(args.rounds, args.epoch_ms)


if __name__ == "__main__":
    main()
