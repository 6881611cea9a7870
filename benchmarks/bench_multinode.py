"""What a 2 nodes x 8 GPUs job leaves in its report directory, and what merging it costs (issue 11).

    python benchmarks/bench_multinode.py [--ranks 16] [--samples 100000000] [--epochs 100] [--hours 24]
                                         [--dir DIR] [--keep]

Simulated on one machine: 16 synthetic rank folders in one directory (as on a shared file system),
each with

1. its served index sets, as each rank exports them at pass ends (``DIR/rank<N>/served/``: one
   bitmap of one bit per sample of the base dataset per role, ``train``, ``first-train`` and, on the
   ranks that evaluate, ``eval``; written atomically, a temporary file renamed over the old one);
   the training sets sharded as ``DistributedSampler`` shards them (rank r serves r, r+16, ...);
2. its event log, built from a real recorded run (``tests/fixtures/correct_loop.events.jsonl``): the
   run's start with the rank's ``RankInfo``, one epoch's events repeated ``--epochs`` times, and the
   memory sampler's samples of a ``--hours`` run (1 s apart for 10 minutes, then 10 s).

Prints the bytes each rank writes, the time to write its bitmaps (the worst pass end: every set
changed), the merge of the bitmaps (read every rank's sets, the unions per role, the train/eval
intersection and the wasted factor sum|served|/|union|, as the cross-rank overlap and unsharded
checks do with ``IndexSet``: OR, AND, popcount over the same bytes) with the memory it holds, and
``merge_directory`` over the 16 event logs (read, findings merged, every cross-rank check).
Wall-clock numbers for docs/multi-node.md, never for tests. The page cache is warm: on a shared
file system the reads are bounded by its bandwidth (600 MB of bitmaps at 1 GB/s: ~0.6 s more).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from watchdog.core.ranks import RankInfo  # noqa: E402
from watchdog.distributed.merge import merge_directory  # noqa: E402

TEMPLATE = ROOT / "tests" / "fixtures" / "correct_loop.events.jsonl"
BASE = "0123456789abcdef"  # one base dataset's file id
VAL_FRACTION = 0.01  # the validation split of the base dataset (a random_split's last 1%)


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def write_atomically(path: Path, bits: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(memoryview(bits))
    os.replace(tmp, path)


def shard_bitmap(samples: int, rank: int, world: int, train_end: int) -> np.ndarray:
    """The bitmap (one bit per sample, most significant bit first, as IndexSet keeps it) of
    ``range(rank, train_end, world)``: for ``world`` = 8 or 16 a repeating byte pattern."""
    nbytes = (samples + 7) // 8
    if world % 8 == 0:
        period = world // 8
        pattern = np.zeros(period, dtype=np.uint8)
        pattern[rank // 8] = 128 >> (rank % 8)
        bits = np.tile(pattern, nbytes // period + 1)[:nbytes]
    else:
        mask = np.zeros(samples, dtype=bool)
        mask[rank:train_end:world] = True
        bits = np.packbits(mask)
    bits[train_end // 8:] = 0  # train_end is a multiple of 8
    return bits


def eval_bitmap(samples: int, train_end: int) -> np.ndarray:
    mask_bytes = np.zeros((samples + 7) // 8, dtype=np.uint8)
    mask_bytes[(train_end + 7) // 8:] = 0xFF  # the validation split: the samples after train_end
    return mask_bytes


def write_bitmaps(directory: Path, ranks: int, samples: int, eval_ranks: set[int]) -> list[float]:
    train_end = int(samples * (1 - VAL_FRACTION)) // 8 * 8
    seconds = []
    val = eval_bitmap(samples, train_end)
    for rank in range(ranks):
        served = directory / f"rank{rank}" / "served"
        served.mkdir(parents=True, exist_ok=True)
        bits = shard_bitmap(samples, rank, ranks, train_end)
        t0 = time.perf_counter()
        write_atomically(served / f"train-{BASE}.bits", bits)
        write_atomically(served / f"first-train-{BASE}.bits", bits)
        if rank in eval_ranks:
            write_atomically(served / f"eval-{BASE}.bits", val)
        seconds.append(time.perf_counter() - t0)
    return seconds


def merge_bitmaps(directory: Path, ranks: int) -> dict[str, float]:
    """The cross-rank overlap and unsharded checks' work on the bitmaps: one rank's file at a time."""
    t0 = time.perf_counter()
    unions: dict[str, np.ndarray] = {}
    served_total = {"train": 0, "first-train": 0, "eval": 0}
    read = 0
    for rank in range(ranks):
        for role in ("train", "first-train", "eval"):
            path = directory / f"rank{rank}" / "served" / f"{role}-{BASE}.bits"
            if not path.is_file():
                continue
            bits = np.fromfile(path, dtype=np.uint8)
            read += bits.nbytes
            served_total[role] += int(np.bitwise_count(bits).sum())
            if role in unions:
                unions[role] |= bits
            else:
                unions[role] = bits
    union_count = {role: int(np.bitwise_count(u).sum()) for role, u in unions.items()}
    overlap = int(np.bitwise_count(unions["train"] & unions["eval"]).sum()) if "eval" in unions else 0
    wasted = served_total["first-train"] / max(1, union_count.get("first-train", 0))
    seconds = time.perf_counter() - t0
    held = sum(u.nbytes for u in unions.values())
    return {"seconds": seconds, "read": read, "held": held, "overlap": overlap, "wasted_factor": wasted,
            "train_union": union_count.get("train", 0)}


def template_events() -> tuple[dict, list[dict], dict]:
    events = [json.loads(line) for line in TEMPLATE.read_text().splitlines() if line.strip()]
    start = next(e for e in events if e["kind"] == "run_start")
    end = next(e for e in events if e["kind"] == "run_end")
    ends = [i for i, e in enumerate(events) if e["kind"] == "epoch_end"]
    epoch = [e for e in events[ends[0] + 1: ends[1] + 1]]  # epoch 1's events: validation, save, verdict, training
    return start, epoch, end


def write_logs(directory: Path, ranks: int, epochs: int, hours: float) -> list[int]:
    start, epoch_block, end = template_events()
    steps_per_epoch = 25
    samples_at = [float(s) for s in range(0, 600)] + [float(s) for s in range(600, int(hours * 3600), 10)]
    sizes = []
    for rank in range(ranks):
        env = {"RANK": str(rank), "WORLD_SIZE": str(ranks), "LOCAL_RANK": str(rank % 8), "LOCAL_WORLD_SIZE": "8",
               "GROUP_RANK": str(rank // 8), "TORCHELASTIC_RUN_ID": "bench", "MASTER_ADDR": "node0",
               "MASTER_PORT": "29500"}
        info = replace(RankInfo.from_env(env), host=f"node{rank // 8}", pid=1000 + rank)
        folder = directory / f"rank{rank}"
        folder.mkdir(parents=True, exist_ok=True)
        t = 1_700_000_000.0
        lines = []
        first = copy.deepcopy(start)
        first["data"]["rank"] = info.to_dict()
        first["data"]["pid"] = info.pid
        lines.append(first)
        span = hours * 3600 / max(1, epochs)
        sampler = iter(samples_at)
        next_sample = next(sampler, None)
        for e in range(epochs):
            t_epoch = t + e * span
            while next_sample is not None and next_sample < (e + 1) * span:
                lines.append({"kind": "memory_sample", "t": t + next_sample,
                              "data": {"at": "sampler", "epoch": e, "steps": e * steps_per_epoch,
                                       "rss": 3_000_000_000 + rank, "cuda": [
                                           {"device": rank % 8, "allocated": 40_000_000_000,
                                            "reserved": 60_000_000_000}]}})
                next_sample = next(sampler, None)
            for event in epoch_block:
                ev = copy.deepcopy(event)
                ev["t"] = t_epoch
                data = ev["data"]
                for key in ("epoch", "pass_index"):
                    if key in data:
                        data[key] = e
                if "epochs_completed" in data:
                    data["epochs_completed"] = e + 1
                for key in ("steps", "step", "last_step"):
                    if key in data:
                        data[key] = (e + 1) * steps_per_epoch
                if "first_step" in data:
                    data["first_step"] = e * steps_per_epoch + 1
                if ev["kind"] == "checkpoint_saved":
                    data["path"] = f"/shared/ckpt/rank{rank}.pt"  # a distinct file per rank: no finding
                lines.append(ev)
        last = copy.deepcopy(end)
        last["t"] = t + hours * 3600
        last["data"].update(epochs=epochs, steps=epochs * steps_per_epoch)
        lines.append(last)
        text = "".join(json.dumps(line) + "\n" for line in lines)
        (folder / "events.jsonl").write_text(text)
        sizes.append(len(text.encode()))
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=16)
    ap.add_argument("--samples", type=int, default=100_000_000)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--dir", default=None, help="where to write the rank folders (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    directory = Path(args.dir or tempfile.mkdtemp(prefix="watchdog-multinode-"))
    try:
        print(f"{args.ranks} ranks (2 nodes x {args.ranks // 2}), one base dataset of {args.samples:,} samples, "
              f"{args.epochs} epochs over {args.hours:g} h, in {directory}")
        bitmap = (args.samples + 7) // 8
        for label, eval_ranks in (("rank 0 evaluates", {0}), ("every rank evaluates", set(range(args.ranks)))):
            shutil.rmtree(directory, ignore_errors=True)
            writes = write_bitmaps(directory, args.ranks, args.samples, eval_ranks)
            merged = merge_bitmaps(directory, args.ranks)
            total = sum(f.stat().st_size for f in directory.rglob("*.bits"))
            print(f"\nbitmaps, {label}: {mib(bitmap)} per role per base dataset per rank; "
                  f"{mib(total)} in all rank folders")
            print(f"  write per rank (train + first-train, and eval on the ranks that evaluate; atomic): "
                  f"median {sorted(writes)[len(writes) // 2] * 1e3:.0f} ms, worst {max(writes) * 1e3:.0f} ms")
            print(f"  merge: read {mib(merged['read'])}, unions + intersection + wasted factor in "
                  f"{merged['seconds']:.2f} s, holding {mib(merged['held'])} "
                  f"(overlap {merged['overlap']}, wasted factor {merged['wasted_factor']:.2f}, "
                  f"train union {merged['train_union']:,})")
        sizes = write_logs(directory, args.ranks, args.epochs, args.hours)
        print(f"\nevent logs: {mib(sizes[0])} per rank ({args.epochs} epochs, {args.hours:g} h of memory samples), "
              f"{mib(sum(sizes))} in all")
        best = None
        held = 0
        process = psutil.Process()
        for _ in range(3):
            records = merged_findings = None
            gc.collect()
            rss_before = process.memory_info().rss
            t0 = time.perf_counter()
            records, merged_findings = merge_directory(directory)
            seconds = time.perf_counter() - t0
            held = max(held, process.memory_info().rss - rss_before)  # the records alive: every rank's events
            best = seconds if best is None else min(best, seconds)
        events = sum(len(r.events) for r in records)
        print(f"  merge_directory: {len(records)} ranks, {events:,} events, {len(merged_findings.findings)} merged "
              f"findings, best of 3: {best:.2f} s ({best / max(1, events) * 1e6:.1f} us per event); "
              f"the ranks' events held in memory: ~{mib(held)} (RSS)")
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
