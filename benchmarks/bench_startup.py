"""Start-up costs (issue 14 item 5), each in fresh interpreters, wall clock, alternating.

    python benchmarks/bench_startup.py [--repeats 7]

- ``watchdog run noop.py`` against ``python noop.py``: a script that imports torch and does nothing
  else (what every training script pays first); ``collect.py``, the same ending with one full
  collection (``gc.collect()``): a run's start pauses the cyclic collector, so ``noop.py`` exits
  before paying the collection a longer script would run soon after the start (both sides pay it
  here; the difference is watchdog's own work); and an empty one;
- the first ``Run.start`` in a process (entering ``watchdog.watch(dashboard=False, summary=False)``
  after ``import torch, watchdog``): its CPU time (``time.process_time``, all threads) and wall
  time, and the run's end likewise;
- ``watchdog report DIR`` on a recorded run's ``events.jsonl`` (tests/fixtures/overlap_bug);
- ``watchdog --version``;
- ``previous/`` folders left by a decorated function called 15 times with one report directory.

Medians (and the fastest) of ``--repeats`` runs, the two sides of each comparison alternating; with
watchdog's bytecode cache written (as pip installs it; the warm-up writes it, whatever
``PYTHONDONTWRITEBYTECODE`` says).
Wall-clock numbers: for the README and docs/internals.md, never for tests (tests/test_startup.py
checks what is imported, not how long it takes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "overlap_bug.events.jsonl"
# As installed: with the bytecode cache (pip compiles it; PYTHONDONTWRITEBYTECODE=1 would make each
# start compile watchdog's modules again, ~0.4 s on the CI machine). The warm-up writes it.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(ROOT)
_SCRIPT = Path(sys.executable).parent / "watchdog"  # the console script, as a user types it
WATCHDOG = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "watchdog"]

FIRST_START = """
import json, tempfile, time
import torch, watchdog
with tempfile.TemporaryDirectory() as tmp:
    c0, w0 = time.process_time(), time.perf_counter()
    block = watchdog.watch(report_dir=tmp, dashboard=False, summary=False)
    block.__enter__()
    c1, w1 = time.process_time(), time.perf_counter()
    block.__exit__(None, None, None)
    c2, w2 = time.process_time(), time.perf_counter()
print(json.dumps({"start_cpu": c1 - c0, "start_wall": w1 - w0, "end_cpu": c2 - c1, "end_wall": w2 - w1}))
"""

PREVIOUS = """
import os, sys, tempfile, watchdog
tmp = tempfile.mkdtemp()
@watchdog.watch(report_dir=tmp, dashboard=False, summary=False)
def train():
    pass
for _ in range(15):
    train()
print(len(os.listdir(os.path.join(tmp, "previous"))))
"""


def timed(argv: list[str], cwd: str, cpu: list[float] | None = None) -> float:
    """Wall seconds of ``argv`` run to its end; its CPU seconds (user + system, the process and its
    children: what a loaded machine adds to the wall time, left out) appended to ``cpu``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=300)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def summary(times: list[float], cpu: list[float] | None = None) -> str:
    text = f"median {statistics.median(times):.3f} s (fastest {min(times):.3f} s)"
    if cpu:
        text += f", CPU median {statistics.median(cpu):.3f} s"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    n = args.repeats
    with tempfile.TemporaryDirectory(prefix="wd-bench-startup-") as tmp:
        Path(tmp, "noop.py").write_text("import torch\n")
        Path(tmp, "collect.py").write_text("import gc\nimport torch\ngc.collect()\n")
        Path(tmp, "empty.py").write_text("")
        report_dir = Path(tmp, "report")
        report_dir.mkdir()
        shutil.copy(FIXTURE, report_dir / "events.jsonl")
        timed(WATCHDOG + ["run", "--quiet", "--no-dashboard", "--report-dir", "warm-up", "noop.py"], tmp)  # bytecode,
        timed(WATCHDOG + ["report", str(report_dir)], tmp)  # page cache
        timed([sys.executable, "noop.py"], tmp)
        for script in ("noop.py", "collect.py", "empty.py"):
            plain: list[float] = []
            watched: list[float] = []
            plain_cpu: list[float] = []
            watched_cpu: list[float] = []
            for i in range(n):
                pair = [([sys.executable, script], plain, plain_cpu),
                        (WATCHDOG + ["run", "--quiet", "--no-dashboard", "--report-dir", f"wd-{i}", script], watched,
                         watched_cpu)]
                for argv, into, cpu in (pair if i % 2 == 0 else pair[::-1]):
                    into.append(timed(argv, tmp, cpu))
            added = statistics.median(w - p for w, p in zip(watched, plain))
            added_cpu = statistics.median(w - p for w, p in zip(watched_cpu, plain_cpu))
            what = {"noop.py": "imports torch", "collect.py": "imports torch, then gc.collect()"}.get(script, "empty")
            print(f"python {script} ({what}): {summary(plain, plain_cpu)}; watchdog run {script}: "
                  f"{summary(watched, watched_cpu)}; added: wall median {added:+.3f} s "
                  f"(fastest against fastest {min(watched) - min(plain):+.3f} s), CPU median {added_cpu:+.3f} s",
                  flush=True)
        starts = []
        for _ in range(n):
            out = subprocess.run([sys.executable, "-c", FIRST_START], cwd=tmp, env=ENV, check=True,
                                 capture_output=True, text=True, timeout=300).stdout
            starts.append(json.loads(out.splitlines()[-1]))
        for key, label in (("start", "first Run.start"), ("end", "its run end (report written)")):
            cpu = [s[f"{key}_cpu"] for s in starts]
            wall = [s[f"{key}_wall"] for s in starts]
            print(f"{label}: CPU median {statistics.median(cpu) * 1e3:.0f} ms (least {min(cpu) * 1e3:.0f}), "
                  f"wall median {statistics.median(wall) * 1e3:.0f} ms", flush=True)
        for label, argv in (("watchdog report DIR", WATCHDOG + ["report", str(report_dir)]),
                            ("watchdog --version", WATCHDOG + ["--version"]),
                            ("(python -c pass)", [sys.executable, "-c", "pass"])):
            cpu: list[float] = []
            wall = [timed(argv, tmp, cpu) for _ in range(n)]
            print(f"{label}: {summary(wall, cpu)}", flush=True)
        out = subprocess.run([sys.executable, "-c", PREVIOUS], cwd=tmp, env=ENV, check=True, capture_output=True,
                             text=True, timeout=300).stdout
        print(f"previous/ folders after 15 calls of a decorated function: {out.split()[-1]}", flush=True)


if __name__ == "__main__":
    main()
