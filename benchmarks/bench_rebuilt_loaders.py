"""Memory the overlap check keeps when the loop builds its DataLoaders inside the epoch loop.

    python benchmarks/bench_rebuilt_loaders.py                    # 10M-sample base, 50 epochs (~1 min)
    python benchmarks/bench_rebuilt_loaders.py --size 1000000 --epochs 20

A base dataset of ``--size`` samples (index-only: ``__getitem__`` returns the index), a training
``Subset`` of 2,000 of its samples and a validation ``Subset`` of 400 (10 of them training samples:
an overlap bug, so the check has something to compare each epoch). Two loops in one process, each
in its own watched session:

- ``built once``: ``train_loader`` and ``val_loader`` made before the epoch loop;
- ``rebuilt``: both made again at the top of every epoch (``train_loader = DataLoader(...)``).

The served sets are bitmaps over the whole base (``size / 8`` bytes each, 1.25 MB at 10M samples),
however few samples a pass serves. Printed after epochs 1, 10 and ``--epochs``: the bytes of the
sets the overlap check keeps (``IndexSet`` values of its tables) and their count, and Python's
traced memory (``tracemalloc``, numpy's arrays included) above the session's start; last, the
rebuilt loop's figures over the built-once loop's, and the finding each reported (the same).
Memory figures only: for the README and docs/internals.md, never for tests.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset, Subset  # noqa: E402

import watchdog  # noqa: E402
from watchdog.overlap.check import OverlapCheck  # noqa: E402
from watchdog.overlap.indexset import IndexSet  # noqa: E402

MB = 1 << 20


class IndexDataset(Dataset):
    """``size`` samples, each its own index (as a float feature): no data held."""

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i % 97)])


def retained_sets(run: watchdog.Run) -> tuple[int, int]:
    """(count, bytes) of the ``IndexSet``s the run's overlap check holds in its tables."""
    check = next(c for c in run.checks if isinstance(c, OverlapCheck))
    sets = [v for table in vars(check).values() if isinstance(table, dict)
            for v in table.values() if isinstance(v, IndexSet)]
    return len(sets), sum(s.nbytes for s in sets)


def session(size: int, epochs: int, rebuilt: bool, report_dir: str) -> tuple[list[tuple], list[str]]:
    base = IndexDataset(size)
    train_ds = Subset(base, np.arange(0, 2000))
    val_ds = Subset(base, np.arange(1990, 2390))  # 10 training samples in it
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    rows = []
    gc.collect()
    start = tracemalloc.get_traced_memory()[0]
    with watchdog.watch(report_dir=report_dir, dashboard=False, summary=False) as run:
        train_loader = DataLoader(train_ds, batch_size=250, shuffle=True)
        val_loader = DataLoader(val_ds, batch_size=200)
        for epoch in range(1, epochs + 1):
            if rebuilt:
                train_loader = DataLoader(train_ds, batch_size=250, shuffle=True)
                val_loader = DataLoader(val_ds, batch_size=200)
            for x in train_loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
            with torch.no_grad():
                for x in val_loader:
                    model(x)
            if epoch in (1, 10, epochs):
                gc.collect()
                count, nbytes = retained_sets(run)
                rows.append((epoch, count, nbytes, tracemalloc.get_traced_memory()[0] - start))
    messages = [f.message for f in run.findings if f.code == "overlap/train-eval"]
    return rows, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--epochs", type=int, default=50)
    args = parser.parse_args()
    tracemalloc.start()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        session(1000, 1, True, os.path.join(tmp, "warm-up"))  # imports and first-use caches, not counted
        for rebuilt in (False, True):
            name = "rebuilt" if rebuilt else "built once"
            rows, messages = session(args.size, args.epochs, rebuilt, os.path.join(tmp, name.replace(" ", "_")))
            results[name] = rows, messages
            print(f"{name:>10}: base of {args.size:,} samples, {args.epochs} epochs")
            for epoch, count, nbytes, traced in rows:
                print(f"{'':>12}after epoch {epoch:>4}: {count:>4} sets kept, {nbytes / MB:8.2f} MB; "
                      f"traced {traced / MB:8.2f} MB")
    (_, once_count, once_bytes, once_traced), (_, re_count, re_bytes, re_traced) = (
        results["built once"][0][-1], results["rebuilt"][0][-1])
    print(f"rebuilt / built once after {args.epochs} epochs: sets kept {re_count}/{once_count}, "
          f"bytes {re_bytes / max(once_bytes, 1):.2f}x, traced {re_traced / max(once_traced, 1):.2f}x")
    same = results["built once"][1] == results["rebuilt"][1]
    print(f"overlap/train-eval findings the same: {same}")
    if not same:
        for name, (_, messages) in results.items():
            print(f"  {name}: {messages}")


if __name__ == "__main__":
    main()
