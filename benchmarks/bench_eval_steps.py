"""Per-step and per-forward cost of watching, for the eval/... checks (issue 4).

Times a tiny model's training step (forward, backward, optimizer step) and an evaluation forward
under no_grad, unwatched and watched, in the same process, interleaved, and prints the ratios and
the absolute difference per step. The watched step includes the step alarm compare added for the
eval checks; the watched no_grad forward includes the evaluation-step bookkeeping outside passes.

    python benchmarks/bench_eval_steps.py [--steps 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import watchdog  # noqa: E402


def make():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1), nn.Linear(8, 2))
    return model, torch.optim.SGD(model.parameters(), lr=0.01), torch.randn(4, 8), torch.randint(0, 2, (4,))


def train_steps(model, optimizer, x, y, steps):
    t0 = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return (time.perf_counter() - t0) / steps


def eval_forwards(model, x, steps):
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    best = {"train_off": [], "train_on": [], "eval_off": [], "eval_on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            model, optimizer, x, y = make()
            best["train_off"].append(train_steps(model, optimizer, x, y, args.steps))
            best["eval_off"].append(eval_forwards(model, x, args.steps))
            model, optimizer, x, y = make()
            with watchdog.watch(report_dir=tmp, summary=False):
                train_steps(model, optimizer, x, y, 1)  # first step: discovers the model (boundary cost)
                best["train_on"].append(train_steps(model, optimizer, x, y, args.steps))
                best["eval_on"].append(eval_forwards(model, x, args.steps))
    m = {k: min(v) for k, v in best.items()}
    print(f"train step:  unwatched {m['train_off'] * 1e6:.1f} us, watched {m['train_on'] * 1e6:.1f} us, "
          f"ratio {m['train_on'] / m['train_off']:.3f}, +{(m['train_on'] - m['train_off']) * 1e6:.2f} us/step")
    print(f"no_grad fwd: unwatched {m['eval_off'] * 1e6:.1f} us, watched {m['eval_on'] * 1e6:.1f} us, "
          f"ratio {m['eval_on'] / m['eval_off']:.3f}, +{(m['eval_on'] - m['eval_off']) * 1e6:.2f} us/forward")


if __name__ == "__main__":
    main()
