"""Cost of the live dashboard on a training loop: the same loop with and without it, interleaved.

The dashboard draws into an in-memory terminal console (what a real terminal costs to render,
without the terminal's own drawing time) from its own thread at the given rate; the loop is a small
CPU MLP whose steps take about a millisecond, so the GIL held by rendering shows up if it matters.

    python benchmarks/bench_dashboard.py [--hz 1] [--steps 3000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import pathlib

import torch
from rich.console import Console

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from watchdog.report.dashboard import Dashboard


class Counters:
    steps = 0
    epoch = 0


def train(steps: int, counters: Counters, dash: Dashboard | None) -> float:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(64, 256)
    y = torch.randint(0, 10, (64,))
    t0 = time.perf_counter()
    for i in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        counters.steps += 1
        if dash is not None and i % 500 == 499:
            counters.epoch += 1
            dash.on_event({"kind": "epoch_end", "t": time.time(), "data": {"epoch": counters.epoch,
                                                                           "steps": counters.steps}})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hz", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    train(300, Counters(), None)  # warm-up
    plain, watched, ratios, frames, render = [], [], [], 0, 0.0

    def with_dashboard() -> float:
        nonlocal frames, render
        c = Counters()
        console = Console(file=io.StringIO(), width=120, height=30, force_terminal=True,
                          color_system="truecolor")
        d = Dashboard(c, mode="live", console=console, refresh_hz=args.hz)
        d.start()
        try:
            return train(args.steps, c, d)
        finally:
            d.stop()
            frames += d.frames
            render += d.render_seconds

    for r in range(args.rounds):  # alternate the order, so drift does not favour one side
        if r % 2:
            w = with_dashboard()
            p = train(args.steps, Counters(), None)
        else:
            p = train(args.steps, Counters(), None)
            w = with_dashboard()
        plain.append(p)
        watched.append(w)
        ratios.append(w / p)
    p, w = statistics.median(plain), statistics.median(watched)
    print(f"steps/round {args.steps}, rounds {args.rounds}, refresh {min(args.hz, 2.0)} Hz, torch threads 1")
    print(f"without dashboard: {p * 1e6 / args.steps:.1f} us/step (median of rounds)")
    print(f"with dashboard:    {w * 1e6 / args.steps:.1f} us/step")
    print(f"ratio with/without: {statistics.median(ratios):.4f} (median of per-round ratios; "
          f"range {min(ratios):.3f}-{max(ratios):.3f})")
    print(f"loss watch: +{backward_wrapper_cost():.0f} ns per backward() (wrapper call + weakref)")
    print(f"render: {frames} frames, {1e3 * render / max(frames, 1):.2f} ms/frame "
          f"({100 * render / max(sum(watched), 1e-9):.2f}% of the watched wall time)")


def backward_wrapper_cost(n: int = 300_000) -> float:
    """ns per call added by the loss watch's hook on backward() (one wrapper call, a weakref)."""
    import timeit
    import types

    from watchdog.core.patching import FunctionPatch
    from watchdog.report.presentation import PresentationProbe

    fake_autograd = types.SimpleNamespace(backward=lambda *a, **k: None)  # wrap a no-op, not torch's
    plain = fake_autograd.backward
    holder: list = [None]
    undo = FunctionPatch.hook(fake_autograd, "backward",
                              lambda args, kwargs: PresentationProbe.note_loss(holder, args, kwargs), on_error=print)
    wrapped = fake_autograd.backward
    try:
        x = torch.ones(1, requires_grad=True)
        a = min(timeit.repeat(lambda: plain(x, None, False, False, inputs=None), number=n, repeat=5))
        b = min(timeit.repeat(lambda: wrapped(x, None, False, False, inputs=None), number=n, repeat=5))
    finally:
        undo()
    return (b - a) / n * 1e9


if __name__ == "__main__":
    main()
