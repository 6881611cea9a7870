"""The ranks' merge (issue 11): what it reads and how long it takes, at 2 and 8 ranks, short and long runs.

    python benchmarks/bench_merge.py [--ranks 2,8] [--epochs 2,300]

Each rank is a real watched run in this process (the launcher's environment set as torchrun sets it:
RANK, WORLD_SIZE, TORCHELASTIC_RUN_ID), a small loop of ``epochs`` epochs with a training and an
evaluation pass each, into one report directory. The last rank's run ends by merging them all, as in
a job. Then ``merge_run`` is timed again on the same folders: the decision's read (``readiness``:
each log's two ends), the merge's read and merge (``work.seconds`` in report.json: each log read
once, findings merged, cross-rank checks) and the whole merge with rendering (report.json, HTML).
Wall-clock numbers: for the docs, never for tests.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import watchdog  # noqa: E402
import watchdog.core.run as run_module  # noqa: E402
from watchdog.distributed.finish import merge_run  # noqa: E402
from watchdog.distributed.job import readiness  # noqa: E402


def one_rank(report_dir: Path, rank: int, world: int, epochs: int) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      TORCHELASTIC_RUN_ID=f"bench-{world}-{epochs}", MASTER_PORT="1")
    # Each rank is the first watched run of its own process in a job; here all share one process.
    run_module._runs_in_process = itertools.count()
    torch.manual_seed(rank)
    train = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
    val = DataLoader(TensorDataset(torch.randn(8, 4), torch.randn(8, 1)), batch_size=8)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with watchdog.watch(report_dir=report_dir, dashboard=False, summary=False):
        for _ in range(epochs):
            for x, y in train:
                optimizer.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                optimizer.step()
            with torch.no_grad():
                for x, _y in val:
                    model(x)


def main() -> None:
    os.environ.setdefault("WATCHDOG_MEMORY_CENSUS", "0")
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", default="2,8")
    ap.add_argument("--epochs", default="2,300")
    args = ap.parse_args()
    print(f"{'ranks':>5} {'epochs':>6} {'log/rank':>10} {'events':>8} {'decide':>8} {'read+merge':>11} {'whole merge':>12}")
    for world in map(int, args.ranks.split(",")):
        for epochs in map(int, args.epochs.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                report_dir = Path(tmp) / "wd"
                for rank in range(world):
                    one_rank(report_dir, rank, world, epochs)
                assert (report_dir / "report.json").is_file(), "the last rank merged"
                t0 = time.perf_counter()
                job, report = merge_run(report_dir, summary=False)
                whole = time.perf_counter() - t0
                t0 = time.perf_counter()
                ready = readiness(report_dir, job.key, world, own_rank=world - 1)
                decide = time.perf_counter() - t0
                assert ready.done, ready
                work = report["ranks"]["work"]
                print(f"{world:>5} {epochs:>6} {work['bytes_read'] / world / 1024:>8.0f} KiB "
                      f"{work['events_read']:>8,} {decide * 1e3:>6.1f} ms {work['seconds'] * 1e3:>8.1f} ms "
                      f"{whole * 1e3:>9.1f} ms")


if __name__ == "__main__":
    main()
