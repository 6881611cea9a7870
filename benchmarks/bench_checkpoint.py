"""Cost of issue 3's checkpoint checks, watched versus unwatched, from the same process.

    python benchmarks/bench_checkpoint.py [--quick]

Prints:
1. the structural check (statetree.inventory) per save, for checkpoints of growing tensor counts;
2. the read-back (weights_only load + bitwise compare + per-leaf CRC) per parameter and per GB,
   for Adam checkpoints of 1M and 10M parameters;
3. torch.save to a file, unwatched vs watched with checkpoint_verify off / first / every;
5. read-back of a file versus its save (100 MB and 1 GB; --readback-only for just this part): time, and
   the anonymous memory (RssAnon) each adds, measured in a fresh subprocess per size;
4. the per-step cost of the first-sight wrappers (LRScheduler.step, GradScaler.update) and of an
   optimizer step once the post-load hook has been removed.
Wall-clock numbers: for the README, never for tests.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import watchdog  # noqa: E402
from watchdog.checkpoint.roundtrip import compare, leaf_crcs, read_back  # noqa: E402
from watchdog.checkpoint.statetree import inventory


def best_of(fn, repeat=5, number=1):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def adam_checkpoint(n_params: int, n_tensors: int = 32):
    per = max(1, n_params // n_tensors)
    model = nn.ParameterList([nn.Parameter(torch.full((per,), 0.5)) for _ in range(n_tensors)])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.1)
    opt.step()
    sched.step()
    ckpt = {"epoch": 1, "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    return model, opt, sched, ckpt


def _rss_anon() -> int:
    """Anonymous resident memory of this process, in bytes (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _peak_anon_during(fn) -> tuple[float, int]:
    """(seconds, peak RssAnon above the start) while ``fn`` runs, sampled every 2 ms by a thread."""
    import threading

    start = _rss_anon()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_anon())
            done.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_anon())
    del result
    return seconds, peak[0] - start


@dataclass
class Readback:
    """One checkpoint saved to a file, then read back as the integrity check does."""

    size_bytes: int  # of the file
    save_s: float
    save_anon_bytes: int  # peak anonymous memory the save added
    verify_s: float  # read_back + compare + leaf_crcs
    verify_anon_bytes: int  # peak anonymous memory the read-back added


def _trim() -> None:
    """Hand memory freed earlier back to the system, so a later allocation shows in RssAnon."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_readback(nbytes: int, directory: str) -> Readback:
    """Save an Adam checkpoint of about ``nbytes`` to ``directory``, then read it back + compare + CRC,
    as the integrity check does; the file is removed afterwards."""
    n_params = nbytes // 12  # weights + Adam's two moments, float32
    _, _, _, ckpt = adam_checkpoint(n_params)
    path = os.path.join(directory, f"ckpt-{nbytes}.pt")
    _trim()
    t_save, anon_save = _peak_anon_during(lambda: torch.save(ckpt, path))
    size = os.path.getsize(path)

    def verify():
        loaded = read_back(path)
        compare(ckpt, loaded)
        leaf_crcs(loaded)
        return None

    try:
        _trim()
        t_verify, anon_verify = _peak_anon_during(verify)
    finally:
        os.unlink(path)
    return Readback(size, t_save, anon_save, t_verify, anon_verify)


def readback_one(nbytes: int, directory: str) -> None:
    """One size, in this (fresh) process: save, then read back + compare + CRC, as the integrity check does."""
    r = measure_readback(nbytes, directory)
    print(f"   {r.size_bytes / 1e6:7.0f} MB: save {r.save_s:6.2f} s (+{r.save_anon_bytes / 1e6:6.0f} MB anon), "
          f"read-back+compare+crc {r.verify_s:6.2f} s (+{r.verify_anon_bytes / 1e6:6.0f} MB anon) = "
          f"{r.verify_s / r.save_s:4.2f}x the save", flush=True)


def readback_table(sizes: list[int], directory: str) -> None:
    import subprocess

    print(f"\n5. read-back of a saved file vs its save (each size in a fresh process, files in {directory})", flush=True)
    for nbytes in sizes:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--readback-one", str(nbytes),
                        "--dir", directory], check=True, timeout=900)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--readback-only", action="store_true")
    ap.add_argument("--readback-one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where part 5 writes its files (default: /tmp)")
    args = ap.parse_args()
    if args.readback_one:
        readback_one(args.readback_one, args.dir)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    readback_sizes = [100_000_000] if args.quick else [100_000_000, 1_000_000_000]
    if args.readback_only:
        readback_table(readback_sizes, args.dir)
        return

    print("\n1. structural check per save (statetree.inventory), model + Adam + scheduler + epoch")
    for n_tensors in (10, 100, 1000):
        model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(n_tensors // 2)])
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        opt.step()
        ckpt = {"epoch": 1, "model": model.state_dict(), "optimizer": opt.state_dict()}
        t = best_of(lambda: inventory(ckpt), repeat=5, number=20)
        print(f"   {n_tensors:5d} parameter tensors (+ 2 Adam tensors each): {t * 1e6:8.1f} us per save, "
              f"{t / n_tensors * 1e6:4.1f} us per parameter tensor")

    print("\n2. read-back per parameter (save to memory excluded; weights_only load + bitwise compare + CRC)")
    sizes = (1_000_000,) if args.quick else (1_000_000, 10_000_000)
    for n in sizes:
        _, _, _, ckpt = adam_checkpoint(n)
        buf = io.BytesIO()
        torch.save(ckpt, buf)
        data = buf.getvalue()
        gb = len(data) / 1e9
        t_load = best_of(lambda: read_back(data), repeat=3)
        loaded = read_back(data)
        t_cmp = best_of(lambda: compare(ckpt, loaded), repeat=3)
        t_crc = best_of(lambda: leaf_crcs(loaded), repeat=3)
        total = t_load + t_cmp + t_crc
        print(f"   {n / 1e6:4.0f}M params ({len(data) / 1e6:6.1f} MB with Adam): load {t_load * 1e3:7.1f} ms, "
              f"compare {t_cmp * 1e3:6.1f} ms, crc {t_crc * 1e3:6.1f} ms = {total * 1e3:7.1f} ms; "
              f"{total / n * 1e9:5.1f} ns/param, {total / gb:5.2f} s/GB")

    print("\n3. torch.save to a file, 1M params + Adam: unwatched vs watched (best of 3 interleaved medians)")
    _, opt, _, ckpt = adam_checkpoint(1_000_000)
    import statistics

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ckpt.pt")

        def median_save(runs=7):
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                torch.save(ckpt, path)
                times.append(time.perf_counter() - t0)
            return statistics.median(times)

        results: dict[str, list[float]] = {"unwatched": [], "off": [], "every": []}
        for round_ in range(3):  # interleaved rounds: this machine's disk and CPU are shared and noisy
            results["unwatched"].append(median_save(3))
            for policy in ("off", "every"):
                with watchdog.watch(report_dir=os.path.join(tmp, f"r-{policy}-{round_}"), summary=False,
                                    checkpoint_verify=policy):
                    results[policy].append(median_save(3))
        base = min(results["unwatched"])
        for label, ts in results.items():
            t = min(ts)
            print(f"   {('watched, verify=' + label) if label != 'unwatched' else label:28s} {t * 1e3:7.1f} ms  "
                  f"(+{(t - base) * 1e3:5.1f} ms, {t / base:4.2f}x)")
        print("   (verify=first costs 'every' on the first save of each checkpoint layout, 'off' afterwards)")

    print("\n4. per-step cost of the wrappers (ns per call, watched minus unwatched)")
    model = nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10**9)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    n = 20_000 if args.quick else 100_000

    def bench_sched():
        for _ in range(n):
            sched.step()

    def bench_scaler():
        for _ in range(n):
            scaler.update()

    def bench_opt():
        for _ in range(n // 10):
            opt.step()

    import warnings

    warnings.simplefilter("ignore")
    rows = []  # optimizer.step's added cost is the training probe's step hook (foundation), listed for scale
    for label, fn, count in (("LRScheduler.step", bench_sched, n), ("GradScaler.update", bench_scaler, n),
                             ("optimizer.step", bench_opt, n // 10)):
        before = best_of(fn, repeat=3) / count
        with tempfile.TemporaryDirectory() as tmp, watchdog.watch(report_dir=tmp, summary=False):
            sched.step()
            scaler.update()
            watched = best_of(fn, repeat=3) / count
        rows.append((label, before, watched))
    for label, before, watched in rows:
        print(f"   {label:18s} unwatched {before * 1e9:8.0f} ns, watched {watched * 1e9:8.0f} ns, "
              f"added {(watched - before) * 1e9:6.0f} ns")

    readback_table(readback_sizes, args.dir)


if __name__ == "__main__":
    main()
