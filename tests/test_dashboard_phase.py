"""The dashboard's phase comes from what the pass has done so far, by the DataLoader probe's own
rule (issue 13, item 6): a training pass whose first forward ran, backward not yet, is not "eval"."""
from __future__ import annotations

import io

import torch
from torch import nn

import watchdog
from tests.loops import loader, make_dataset, make_model
from watchdog.report.dashboard import Dashboard


def test_phase_between_forward_and_backward_and_in_evaluation(tmp_path):
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        dashboard = Dashboard(run, mode="lines", line_stream=io.StringIO())
        remove = run.bus.add_listener(dashboard.on_event)
        train_loader = loader(make_dataset(64))
        for epoch in range(3):
            fresh = epoch == 2  # a loader built in the loop: no earlier pass to go by
            for i, (x, y) in enumerate(loader(make_dataset(64)) if fresh else train_loader):
                loss = nn.functional.cross_entropy(model(x), y)
                if i == 0:
                    dashboard.tick()  # forward done, backward not yet: a slow model's first seconds
                    seen.append(("train, before backward" + (" (fresh loader)" if fresh else ""), epoch,
                                 dashboard.view.phase))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                for x, _ in loader(make_dataset(32, seed=1)):
                    model(x)
                    dashboard.tick()
                    seen.append(("eval", epoch, dashboard.view.phase))
                    break
        remove()
    assert [phase for what, _, phase in seen if what == "train, before backward"] == ["train", "train"]
    # a new loader iterated where only training loaders were: a training pass (never "eval")
    assert [phase for what, _, phase in seen if what.endswith("(fresh loader)")] == ["train"]
    assert [phase for what, _, phase in seen if what == "eval"] == ["eval", "eval", "eval"]


def test_a_loader_rebuilt_each_epoch_prints_each_epoch_line_with_its_evaluation(tmp_path):
    """`for x, y in DataLoader(...)` inside the epoch loop: a new loader each epoch, iterated at the
    same place; its epoch line waits for the epoch's evaluation as a reused loader's does."""
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_data, val_data = make_dataset(64), make_dataset(32, seed=1)
    lines = io.StringIO()
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        dashboard = Dashboard(run, mode="lines", line_stream=lines)
        remove = run.bus.add_listener(dashboard.on_event)
        for epoch in range(3):
            for x, y in loader(train_data):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
            with torch.no_grad():
                for x, _ in loader(val_data):
                    model(x)
        remove()
        dashboard.stop()
    printed = lines.getvalue().splitlines()
    assert [ln.split(" · ")[0] for ln in printed] == [f"[watchdog] epoch {e} ended" for e in range(3)]
    assert all("eval passes 1" in ln for ln in printed), printed
