"""What watching costs a whole short run, start and report included: a toy run watched and unwatched,
alternating in one process.

    python benchmarks/bench_whole_run.py [--epochs 2 20] [--rounds 0] [--epoch-ms 100] [--fresh N]
                                         [--instructions] [--profile EPOCHS]

The toy run is what a user's script does under ``with watchdog.watch(report_dir=..., dashboard=False)``
(the other options at their defaults: the census within its budget, the terminal summary, report.json
and report.html written): a tiny MLP (32-256-10, Adam) trained with batch 64 for ~100 ms per epoch,
then a small validation pass (10 batches) per epoch. The model, the optimizer and the DataLoaders are
built inside the run; the dataset's tensors once, outside.

Printed, for each ``--epochs`` (2 and 20 by default):

- **A/B**: each round runs unwatched (A), watched (B) and unwatched again (A'), in a rotating order.
  The median of the per-round ratios B/A, and the A/A' ratio from the same rounds: the noise floor
  (its median and the spread of the middle half).
- **Median step**: the median training step (fetch, forward, backward, optimizer step) watched
  over unwatched: the hot path's share of the difference.
- **Where the watched time goes**: one more watched run per round, instrumented (each phase's
  exclusive time, nested phases subtracted): the start, each DataLoader pass's start and end
  (index work), the epoch ends (memory sample, checks) and the census apart, the run's end (close,
  undo, checks' finish), report.json, report.html (reading the log, rendering, writing), the
  terminal summary, the run-end hooks. What is left of watched - unwatched is the steps' share.

The first watched run of a process also pays one-time costs (imports, the HTML templates'
compilation): printed once, as the first watched run minus the first unwatched. ``--fresh N``
measures them as a user meets them: N alternating pairs of fresh processes, each timing one run
(torch imported before the clock starts, ``import watchdog`` inside the timing).

``--instructions`` (when ``valgrind`` and a C compiler with ``valgrind/callgrind.h`` exist; else
skipped with a line saying why): the instructions executed by watched and unwatched runs (the fewer
of two each) in one process under callgrind, its instrumentation switched on only around the runs
(a 3-function helper compiled at run time), so neither torch's import nor the interpreter's start is
counted; then one more watched run of the shortest setting, its count cut at each phase's edges (the
phases above, in instructions: no noise). The memory sampler's period is set to 60 s (under
callgrind's ~50x slowdown it would wake ~50x as often per epoch as natively). Slow: ~10 min at 2
epochs, ~25 min more at 20, on the CI machine (``--epochs 2 --no-ab --instructions`` for the first).
``--profile EPOCHS``: cProfile of one warm watched run, top functions by own time.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VAL_SAMPLES = 640  # 10 validation batches
FEATURES, CLASSES, HIDDEN = 32, 10, 256


# ---------------------------------------------------------------------------------------- the toy run
def make_data(steps: int) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    n = steps * 64 + VAL_SAMPLES
    return TensorDataset(torch.randn(n, FEATURES, generator=g), torch.randint(0, CLASSES, (n,), generator=g))


def train(data: TensorDataset, epochs: int, step_times: list[float]) -> None:
    """The user's script: loaders, model and optimizer built here; ``epochs`` of training + validation."""
    torch.manual_seed(0)
    train_ds, val_ds = random_split(data, [len(data) - VAL_SAMPLES, VAL_SAMPLES],
                                    generator=torch.Generator().manual_seed(0))
    train_loader = DataLoader(train_ds, batch_size=64, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=64)
    model = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    clock = time.perf_counter
    for _ in range(epochs):
        model.train()
        last = clock()
        for x, y in train_loader:
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            now = clock()
            step_times.append(now - last)
            last = now
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += int((model(x).argmax(1) == y).sum())


def toy_run(data: TensorDataset, epochs: int, watched: bool, report_dir: Path,
            step_times: list[float] | None = None, cpu: list[float] | None = None) -> float:
    """Seconds for the whole run, ``with watchdog.watch(...)`` (start, report) included when watched;
    the process's CPU seconds (all threads) appended to ``cpu``."""
    steps = step_times if step_times is not None else []
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):  # the terminal summary
        cpu_start, start = time.process_time(), time.perf_counter()
        if watched:
            import watchdog

            with watchdog.watch(report_dir=report_dir, dashboard=False):
                train(data, epochs, steps)
        else:
            train(data, epochs, steps)
        seconds = time.perf_counter() - start
        if cpu is not None:
            cpu.append(time.process_time() - cpu_start)
        return seconds


# ------------------------------------------------------------------------------- phases of a watched run
class Phases:
    """Exclusive seconds per phase: a phase nested in another is subtracted from the outer one.
    ``switch(name)``, if given, is called each time a stretch of phase ``name`` (``"steps"``: outside
    every phase) ends: where the instruction counts are cut."""

    def __init__(self, switch: Callable[[str], None] | None = None) -> None:
        self.switch = switch
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list[Any]] = []  # [name, started, children's seconds]
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attribute: str, name: str, when: Callable[..., bool] | None = None) -> None:
        original = getattr(owner, attribute)
        phases = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if when is not None and not when(*args, **kwargs):
                return original(*args, **kwargs)
            clock = time.perf_counter
            if phases.switch is not None:
                phases.switch(phases._stack[-1][0] if phases._stack else "steps")
            frame = [name, clock(), 0.0]
            phases._stack.append(frame)
            try:
                return original(*args, **kwargs)
            finally:
                if phases.switch is not None:
                    phases.switch(name)
                phases._stack.pop()
                spent = clock() - frame[1]
                phases.seconds[name] = phases.seconds.get(name, 0.0) + spent - frame[2]
                phases.calls[name] = phases.calls.get(name, 0) + 1
                if phases._stack:
                    phases._stack[-1][2] += spent

        setattr(owner, attribute, timed)
        self._undo.append(lambda: setattr(owner, attribute, original))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


PHASES = (
    ("start", "watch(): Run, its start (report dir, run_start, checks, probes)"),
    ("pass start", "each DataLoader pass's start"),
    ("pass end", "each pass's end (index work, loader_pass_end and its checks)"),
    ("epoch end", "each epoch end (memory sample, growth rule, cadence), census apart"),
    ("census", "the live-tensor census (when the budget allows)"),
    ("close/undo/finish", "run end: passes closed, patches undone, checks' finish"),
    ("run end other", "run end: run_end event, log closed, the rest of stop()"),
    ("report.json", "build_report + write report.json"),
    ("report.html read", "the event log read back into the RunView"),
    ("report.html write", "the page rendered (templates) and written"),
    ("summary", "the terminal summary"),
    ("run-end hooks", "the features' run-end hooks (merge of ranks)"),
)


def instrument(switch: Callable[[str], None] | None = None) -> Phases:
    import watchdog.core.loaders as loaders
    import watchdog.core.loop as loop
    import watchdog.core.run as run
    import watchdog.memory.census as memory_census  # the probe imports take_census from it at each census
    import watchdog.report.html as html
    import watchdog.report.jsonreport as jsonreport
    import watchdog.report.terminal as terminal

    p = Phases(switch)
    p.wrap(run.Watcher, "__enter__", "start")
    p.wrap(run.Watcher, "__exit__", "run end other")
    p.wrap(loaders.DataLoaderProbe, "_begin_pass", "pass start")
    p.wrap(loaders.DataLoaderProbe, "_end_pass", "pass end")
    p.wrap(loop.LoopState, "_end_epoch", "epoch end")
    p.wrap(memory_census, "take_census", "census")
    for step in ("_close_probes", "_undo_patches", "_finish_checks"):
        p.wrap(run.Run, step, "close/undo/finish")
    p.wrap(jsonreport, "build_report", "report.json")
    p.wrap(jsonreport, "write_report_json", "report.json")
    p.wrap(html, "log_view", "report.html read")
    p.wrap(html, "write_html", "report.html write")
    p.wrap(terminal, "print_summary", "summary")
    p.wrap(run.Run, "_run_end_hooks", "run-end hooks")
    return p


# ------------------------------------------------------------------------------------------- helpers
def calibrate(epoch_ms: float, report_dir: Path) -> int:
    """Training steps per epoch for an unwatched epoch (validation included) of ~``epoch_ms`` of CPU time
    (the process's, one intra-op thread): on a loaded machine wall time would give fewer steps, and a
    shorter run whose fixed costs weigh more."""
    probe = make_data(40)
    toy_run(probe, 1, False, report_dir)
    cpu: list[float] = []
    for _ in range(3):
        toy_run(probe, 1, False, report_dir, cpu=cpu)
    per_batch = min(cpu) / (40 + 10 * 0.4)
    return max(10, round((epoch_ms / 1e3 - 10 * 0.4 * per_batch) / per_batch))


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def default_rounds(epochs: int, epoch_ms: float) -> int:
    """About 20 s of A/B/A' per setting (at least 5 rounds)."""
    return max(5, min(41, round(20.0 / (3 * (epochs * epoch_ms / 1e3 + 0.05)))))


# ----------------------------------------------------------------------------------------- in-process
def ab(data: TensorDataset, epochs: int, rounds: int, report_dir: Path) -> None:
    times: dict[str, list[float]] = {"A": [], "B": [], "A'": []}
    cpu: dict[str, list[float]] = {"A": [], "B": [], "A'": []}
    steps: dict[str, list[float]] = {"A": [], "B": []}
    phase_runs: list[tuple[float, dict[str, float], dict[str, int]]] = []
    orders = (("A", "B", "A'"), ("B", "A'", "A"), ("A'", "A", "B"))
    for r in range(rounds):
        for kind in orders[r % 3]:
            step_times: list[float] = []
            times[kind].append(toy_run(data, epochs, kind == "B", report_dir, step_times, cpu[kind]))
            if kind in steps:
                steps[kind].append(statistics.median(step_times))
        phases = instrument()
        try:
            seconds = toy_run(data, epochs, True, report_dir)
        finally:
            phases.undo()
        phase_runs.append((seconds, phases.seconds, phases.calls))

    plain, watched = statistics.median(times["A"]), statistics.median(times["B"])
    print(f"\n{epochs} epochs, {rounds} rounds: unwatched {plain:.3f} s, watched {watched:.3f} s "
          f"({(watched - plain) * 1e3:+.1f} ms); ratios, per round:")
    print(f"  {'':<22} {'wall: median [middle half]':>28} {'best/best':>10} {'CPU: median [middle half]':>28}")
    for label, (num, den) in (("watched/unwatched", ("B", "A")), ("A/A (noise floor)", ("A'", "A"))):
        wall = [n / d for n, d in zip(times[num], times[den])]
        cpus = [n / d for n, d in zip(cpu[num], cpu[den])]
        (wlo, whi), (clo, chi) = quartiles(wall), quartiles(cpus)
        print(f"  {label:<22} {statistics.median(wall):>9.3f} [{wlo:.3f}-{whi:.3f}]     "
              f"{min(times[num]) / min(times[den]):>10.3f} {statistics.median(cpus):>9.3f} [{clo:.3f}-{chi:.3f}]")
    step_ratio = statistics.median([w / p for w, p in zip(steps["B"], steps["A"])])
    step_plain = statistics.median(steps["A"])
    n_steps = len_steps(data) * epochs
    step_cost = (statistics.median(steps["B"]) - step_plain) * n_steps
    print(f"  median step: unwatched {step_plain * 1e6:.0f} us, watched/unwatched {step_ratio:.3f} "
          f"(x {n_steps} steps: ~{step_cost * 1e3:+.1f} ms)")
    print("  where the watched time goes (medians of instrumented watched runs; ms per run, calls):")
    total = 0.0
    for name, what in PHASES:
        ms = statistics.median(s.get(name, 0.0) for _, s, _ in phase_runs) * 1e3
        calls = statistics.median(c.get(name, 0) for _, _, c in phase_runs)
        total += ms
        if ms >= 0.005 or calls:
            print(f"    {name:<18} {ms:7.2f} ms  x{calls:<4g} {what}")
    print(f"    {'boundaries':<18} {total:7.2f} ms  = {total / (plain * 1e3) * 100:.1f}% of the unwatched run")


def len_steps(data: TensorDataset) -> int:
    return -(-(len(data) - VAL_SAMPLES) // 64)


# ------------------------------------------------------------------------------------ fresh processes
def child(args: argparse.Namespace) -> None:
    """One run in this fresh process; prints its seconds (``import watchdog`` included when watched)."""
    torch.set_num_threads(args.threads)
    data = make_data(args.child_steps)
    print(f"{toy_run(data, args.child_epochs, args.child == 'watched', Path(args.child_dir)):.6f}")


def child_env(tmp: Path) -> dict[str, str]:
    """As an installed copy runs: byte-compiled modules kept (in a folder of the benchmark's) and
    compiled templates cached (``WATCHDOG_CACHE_DIR``, filled by a first pair of processes)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    env.setdefault("WATCHDOG_CACHE_DIR", str(tmp / "cache"))
    return env


def fresh(epochs: int, steps: int, pairs: int, threads: int, tmp: Path) -> None:
    run: dict[str, list[float]] = {"plain": [], "watched": []}
    whole: dict[str, list[float]] = {"plain": [], "watched": []}
    env = child_env(tmp)
    for r in range(pairs + 1):  # the first pair fills the caches, untimed
        for kind in (("plain", "watched") if r % 2 == 0 else ("watched", "plain")):
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, __file__, "--child", kind, "--child-epochs", str(epochs), "--child-steps", str(steps),
                 "--child-dir", str(tmp / "fresh"), "--threads", str(threads)],
                check=True, capture_output=True, text=True, env=env)
            if r:
                whole[kind].append(time.perf_counter() - started)
                run[kind].append(float(out.stdout.strip().splitlines()[-1]))
    print(f"  fresh processes ({pairs} alternating pairs; one run each, as `python train.py` runs it):")
    for label, times in (("the run (import watchdog in it)", run), ("the whole process", whole)):
        ratios = [w / p for w, p in zip(times["watched"], times["plain"])]
        plain, watched = statistics.median(times["plain"]), statistics.median(times["watched"])
        print(f"    {label:<32} unwatched {plain:6.3f} s, watched {watched:6.3f} s ({(watched - plain) * 1e3:+5.0f} ms), "
              f"median ratio {statistics.median(ratios):.3f}")


# --------------------------------------------------------------------------------------- instructions
CALLGRIND_HELPER = r"""
#include <valgrind/callgrind.h>
void wd_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void wd_stop(const char *name) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT(name); }
int wd_running(void) { return RUNNING_ON_VALGRIND; }
"""


def build_callgrind_helper(directory: Path) -> tuple[Path | None, str]:
    if shutil.which("valgrind") is None:
        return None, "valgrind not found"
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler"
    source, library = directory / "wd_callgrind.c", directory / "wd_callgrind.so"
    source.write_text(CALLGRIND_HELPER)
    done = subprocess.run([compiler, "-O1", "-shared", "-fPIC", "-o", str(library), str(source)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None, "valgrind/callgrind.h not found (the valgrind development headers)"
    return library, ""


def instructions_child(args: argparse.Namespace) -> None:
    """Under callgrind: a warm-up of each (not counted), then two unwatched and two watched runs per
    setting, alternating, each counted on its own."""
    import ctypes

    helper = ctypes.CDLL(args.callgrind_helper)
    helper.wd_stop.argtypes = [ctypes.c_char_p]
    torch.set_num_threads(args.threads)
    data = make_data(args.child_steps)
    report_dir = Path(args.child_dir)
    toy_run(data, 1, False, report_dir)
    toy_run(data, 1, True, report_dir)
    for epochs in args.epochs:
        for kind in ("plain", "watched", "watched", "plain"):
            helper.wd_start()
            toy_run(data, epochs, kind == "watched", report_dir)
            helper.wd_stop(f"{kind}-{epochs}".encode())
    # One more watched run of the shortest setting, its count cut at each phase's edges.
    def switch(name: str) -> None:
        helper.wd_stop(f"phase:{name}".encode())
        helper.wd_start()

    phases = instrument(switch)
    try:
        helper.wd_start()
        toy_run(data, min(args.epochs), True, report_dir)
        helper.wd_stop(b"phase:steps")
    finally:
        phases.undo()


def instructions(args: argparse.Namespace, steps: int, tmp: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="wd-callgrind-") as work:
        library, why = build_callgrind_helper(Path(work))
        if library is None:
            print(f"\ninstructions: skipped ({why})")
            return
        out = Path(work) / "callgrind.out"
        # The memory sampler wakes every second of wall time: under callgrind's ~50x slowdown it
        # would sample ~50x as often per epoch as it does natively, so it waits a minute here.
        env = {**child_env(tmp), "WATCHDOG_MEMORY_SAMPLE_INTERVAL": "60"}
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-line=no", f"--callgrind-out-file={out}",
               sys.executable, __file__, "--instructions-child", "--callgrind-helper", str(library),
               "--child-steps", str(steps), "--child-dir", str(tmp / "callgrind"), "--threads", str(args.threads),
               "--epochs", *map(str, args.epochs)]
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f"\ninstructions: valgrind failed (exit {done.returncode}):\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}")
            return
        counts: dict[str, int] = {}  # the fewer of each setting's two (a census the budget
        # allowed under callgrind's slowdown, which it did not natively, is in one of them at most)
        phases: dict[str, int] = {}  # the phased run's instructions per phase
        for dump in sorted(Path(work).glob("callgrind.out*")):
            trigger = total = None
            with dump.open(errors="replace") as lines:
                for line in lines:
                    if line.startswith("desc: Trigger:"):
                        trigger = line.split("Client Request: ", 1)[-1].strip()
                    elif line.startswith("totals:"):
                        total = int(line.split()[1])
            dump.unlink()
            if trigger is None or total is None:
                continue
            if trigger.startswith("phase:"):
                phases[trigger[6:]] = phases.get(trigger[6:], 0) + total
            elif "-" in trigger:
                counts[trigger] = min(total, counts.get(trigger, total))
        print(f"\ninstructions under callgrind (all threads; {time.perf_counter() - started:.0f} s):")
        for epochs in args.epochs:
            plain, watched = counts.get(f"plain-{epochs}"), counts.get(f"watched-{epochs}")
            if not plain or not watched:
                print(f"  {epochs} epochs: no dump read back")
                continue
            print(f"  {epochs:>2} epochs: unwatched {plain / 1e9:.3f} G, watched {watched / 1e9:.3f} G "
                  f"({(watched - plain) / 1e6:+.1f} M), ratio {watched / plain:.3f}")
        plain = counts.get(f"plain-{min(args.epochs)}")
        if phases and plain:
            print(f"  where the watched instructions go ({min(args.epochs)} epochs, one instrumented run):")
            for name, _ in PHASES:
                if phases.get(name):
                    print(f"    {name:<18} {phases[name] / 1e6:7.2f} M")
            bounds = sum(v for k, v in phases.items() if k != "steps")
            print(f"    {'boundaries':<18} {bounds / 1e6:7.2f} M = {bounds / plain * 100:.1f}% of the unwatched run; "
                  f"steps and the rest {(phases.get('steps', 0) - plain) / 1e6:+.2f} M "
                  f"({(phases.get('steps', 0) - plain) / plain * 100:+.1f}%, the phases' own timing included)")


# -------------------------------------------------------------------------------------------- profile
def profile(data: TensorDataset, epochs: int, report_dir: Path) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    toy_run(data, epochs, True, report_dir)
    profiler.disable()
    print(f"\ncProfile of one warm watched run of {epochs} epochs (own time):")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[2, 20])
    parser.add_argument("--rounds", type=int, default=0, help="A/B/A' rounds per setting (0: ~20 s each)")
    parser.add_argument("--epoch-ms", type=float, default=100.0, help="an unwatched epoch's length")
    parser.add_argument("--steps", type=int, default=0, help="training steps per epoch (0: from --epoch-ms)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least noise)")
    parser.add_argument("--fresh", type=int, default=0, metavar="N",
                        help="also N alternating pairs of fresh processes per setting")
    parser.add_argument("--instructions", action="store_true", help="instruction counts under callgrind")
    parser.add_argument("--no-ab", action="store_true", help="skip the in-process A/B (with --fresh or --instructions)")
    parser.add_argument("--profile", type=int, default=0, metavar="EPOCHS", help="cProfile one watched run")
    parser.add_argument("--child", choices=("plain", "watched"), help=argparse.SUPPRESS)
    parser.add_argument("--instructions-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--callgrind-helper", help=argparse.SUPPRESS)
    parser.add_argument("--child-epochs", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-steps", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.instructions_child:
        return instructions_child(args)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="wd-bench-") as tmp:
        report_dir = Path(tmp) / "wd"
        steps = args.steps or calibrate(args.epoch_ms, report_dir)
        data = make_data(steps)
        toy_run(data, 1, False, report_dir)
        first_watched = toy_run(data, 1, True, report_dir)  # one-time costs: imports, templates
        second_watched = toy_run(data, 1, True, report_dir)
        epoch = min(toy_run(data, 1, False, report_dir) for _ in range(3))
        print(f"whole toy run (MLP {FEATURES}-{HIDDEN}-{CLASSES}, Adam, batch 64, {steps} steps + 10 validation "
              f"batches per epoch = ~{epoch * 1e3:.0f} ms unwatched; threads={args.threads}; "
              f"watch(report_dir=..., dashboard=False): report.json, report.html, summary)")
        print(f"first watched run of this process: {(first_watched - second_watched) * 1e3:+.0f} ms more than the "
              f"next one (one-time imports and template compilation)")
        for epochs in args.epochs:
            if not args.no_ab:
                ab(data, epochs, args.rounds or default_rounds(epochs, args.epoch_ms), report_dir)
            if args.fresh:
                fresh(epochs, steps, args.fresh, args.threads, Path(tmp))
        if args.profile:
            profile(data, args.profile, report_dir)
        if args.instructions:
            instructions(args, steps, Path(tmp))


if __name__ == "__main__":
    main()
