"""What a rank's served-set export costs at the end of a pass (issue 11), at growing dataset sizes.

    python benchmarks/bench_served_export.py [--sizes 1000000,10000000] [--batch 4096]

One process posing as rank 0 of 2 (``RANK``/``WORLD_SIZE`` set, no process group needed) trains two
epochs over its ``DistributedSampler`` shard of an index-only dataset (the indices are the data), with
``set_epoch``, and evaluates once per epoch over a tenth of the data. Prints, per pass, the time the
export probe's handler took at the pass's end (update the unions, write what changed: tmp + rename)
and the files it left, then what the merge's read of that folder costs. Wall-clock numbers: for the
README and docs, never for tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset  # noqa: E402

import watchdog  # noqa: E402
from watchdog.overlap.export import SERVED_FOLDER, ServedExport, read_served  # noqa: E402


class Indices(Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, idx):
        return torch.as_tensor(idx, dtype=torch.float32).unsqueeze(1)

    def __getitem__(self, i):
        return torch.tensor([float(i)])


def as_batch(batch):
    return batch  # __getitems__ gave the batch's tensor already


def main() -> None:
    os.environ.setdefault("WATCHDOG_MEMORY_CENSUS", "0")
    os.environ["RANK"], os.environ["WORLD_SIZE"] = "0", "2"
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--batch", type=int, default=4096)
    args = ap.parse_args()

    timings: list[tuple[str, float]] = []
    epochs: list[int] = []
    handler = ServedExport.on_loader_pass_end

    def timed(self, event):
        t = time.perf_counter()
        handler(self, event)
        timings.append((f"{event.data['role']} epoch {epochs[-1]}", time.perf_counter() - t))

    ServedExport.on_loader_pass_end = timed
    print(f"{'samples':>12} {'pass':>14} {'export ms':>10}   files after the pass")
    for n in (int(s) for s in args.sizes.split(",")):
        data = Indices(n)
        train = Subset(data, range(0, n - n // 10))
        val = Subset(data, range(n - n // 10, n))
        sampler = DistributedSampler(train, num_replicas=2, rank=0, shuffle=True)
        model = torch.nn.Linear(1, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        with tempfile.TemporaryDirectory() as tmp:
            timings.clear()
            with watchdog.watch(report_dir=tmp, summary=False, dashboard=False) as run:
                folder = run.report_dir / SERVED_FOLDER
                for epoch in range(2):
                    epochs.append(epoch)
                    sampler.set_epoch(epoch)
                    for xb in DataLoader(train, batch_size=args.batch, sampler=sampler, collate_fn=as_batch):
                        optimizer.zero_grad()
                        model(xb).sum().backward()
                        optimizer.step()
                    with torch.no_grad():
                        for xb in DataLoader(val, batch_size=args.batch, collate_fn=as_batch):
                            model(xb)
                    sizes = {p.name.split("-")[0]: p.stat().st_size for p in folder.iterdir()}
                    for label, seconds in timings[-2:]:
                        print(f"{n:>12,} {label:>14} {seconds * 1e3:>10.1f}   "
                              + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(sizes.items())))
            t = time.perf_counter()
            export = read_served(0, run.report_dir)
            bits = sum(len(export.indices(entry)) for role in ("train", "eval") for entry in export.served(role).values())
            print(f"{n:>12,} {'merge read':>14} {(time.perf_counter() - t) * 1e3:>10.1f}   ({bits:,} indices in the unions)")
    ServedExport.on_loader_pass_end = handler


if __name__ == "__main__":
    main()
