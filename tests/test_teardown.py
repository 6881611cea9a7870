"""Teardown: every undo runs even when another fails; every patch, hook and handler comes back (issue 9, item 8)."""

from __future__ import annotations

import json
import signal
import sys
import threading

import pytest
import torch
import torch.optim.optimizer as torch_optimizer
from torch import nn
from torch.utils.data import dataloader as torch_dataloader

import watchdog
from tests.loops import loader, make_dataset, make_model, train_epoch
from watchdog.checkpoint.probe import _scheduler_classes
from watchdog.core.run import Run


def patch_points() -> dict:
    """Everything a run patches or registers process-wide, by name."""
    base = torch_dataloader._BaseDataLoaderIter
    points = {
        "torch.save": torch.save, "torch.load": torch.load, "torch.autograd.backward": torch.autograd.backward,
        "Module.__getstate__": nn.Module.__dict__.get("__getstate__"),
        "Module.load_state_dict": nn.Module.__dict__.get("load_state_dict"),
        "Optimizer.load_state_dict": torch.optim.Optimizer.__dict__.get("load_state_dict"),
        "GradScaler.update": torch.amp.GradScaler.__dict__.get("update"),
        "GradScaler.load_state_dict": torch.amp.GradScaler.__dict__.get("load_state_dict"),
        "optimizer post-step hooks": dict(torch_optimizer._global_optimizer_post_hooks),
        "SIGTERM handler": signal.getsignal(signal.SIGTERM),
        "sys.stdout": sys.stdout, "sys.stderr": sys.stderr,
        "watchdog threads": sorted(t.name for t in threading.enumerate() if t.name.startswith("watchdog")),
    }
    for name in ("__init__", "_reset", "__next__"):
        points[f"_BaseDataLoaderIter.{name}"] = base.__dict__.get(name)
    for cls in _scheduler_classes():
        for name in ("step", "load_state_dict"):
            points[f"{cls.__name__}.{name}"] = cls.__dict__.get(name)
    return points


def watched_loop(run_dir, tmp_path, sabotage) -> tuple[Run, nn.Module]:
    """A short real loop (steps, a save, a load that arms the post-load hook), then ``sabotage(run)``."""
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    with watchdog.watch(report_dir=run_dir, summary=False, dashboard=False) as run:
        train_epoch(model, loader(make_dataset(64), 16), optimizer)
        scheduler.step()
        path = tmp_path / "ckpt.pt"
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict()}, path)
        state = torch.load(path)
        optimizer.load_state_dict(state["optimizer"])
        assert len(torch_optimizer._global_optimizer_post_hooks) == 2  # the post-load hook is armed
        sabotage(run)
    return run, model


def failing(undo, error: BaseException):
    """Make ``undo`` do its work, then raise ``error``: the undo counts as failed."""
    original = undo._fn

    def fn():
        original()
        raise error

    undo._fn = fn


def test_every_undo_runs_when_one_fails(tmp_path):
    before = patch_points()
    assert before["optimizer post-step hooks"] == {} and before["SIGTERM handler"] is signal.SIG_DFL
    count = None
    index = 0
    while count is None or index < count:
        def sabotage(run, index=index):
            nonlocal count
            undos = [u for u in run.patches._undos if not u.done]
            count = len(undos)
            failing(undos[index], RuntimeError("undo broke"))
            sabotage.description = undos[index].description

        run, model = watched_loop(tmp_path / f"wd{index}", tmp_path, sabotage)
        assert patch_points() == before, f"undo {index} ({sabotage.description}) failing left a patch behind"
        assert not model._forward_pre_hooks
        internal = [f for f in run.findings if f.code == "watchdog/internal-error"]
        assert [f.evidence["component"] for f in internal] == [f"undo:{sabotage.description}"]
        report = json.loads((tmp_path / f"wd{index}" / "report.json").read_text())
        assert any(f["code"] == "watchdog/internal-error" for f in report["findings"])
        index += 1
    assert count >= 15  # the run really installed its patches (probes, hooks, handler, threads)


def test_ctrl_c_in_one_undo_still_undoes_the_rest_then_comes_out(tmp_path):
    before = patch_points()

    def sabotage(run):
        undos = [u for u in run.patches._undos if not u.done]
        failing(undos[len(undos) // 2], KeyboardInterrupt())

    with pytest.raises(KeyboardInterrupt):
        watched_loop(tmp_path / "wd", tmp_path, sabotage)
    assert patch_points() == before
    assert (tmp_path / "wd" / "report.json").exists()


def test_undo_step_that_fails_before_undoing_anything_is_covered_by_the_second_pass(tmp_path, monkeypatch):
    before = patch_points()

    def undo_torch_patches(self):  # the first undo pass (the display's undo waits for the second)
        raise RuntimeError("teardown step broke")

    monkeypatch.setattr(Run, "_undo_torch_patches", undo_torch_patches)
    run, _ = watched_loop(tmp_path / "wd", tmp_path, lambda run: None)
    assert patch_points() == before
    assert [f.evidence["component"] for f in run.findings if f.code == "watchdog/internal-error"] == ["shutdown"]
