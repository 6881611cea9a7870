"""Issue 3 on a real framework: Lightning's checkpoints are complete and verified, its resume is correct."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import watchdog
from watchdog.core.events import read_events

pl = pytest.importorskip("pytorch_lightning")


class Regressor(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50)}


def data():
    x = torch.linspace(-1, 1, 64).reshape(32, 2)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


def trainer(tmp_path, epochs):
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=str(tmp_path), num_sanity_val_steps=0)


def relevant(run):
    return sorted(f.code for f in run.findings if f.code.startswith(("checkpoint/", "resume/", "watchdog/")))


def test_lightning_save_and_resume_are_clean(tmp_path):
    with watchdog.watch(report_dir=tmp_path / "wd1", summary=False) as run:
        trainer(tmp_path, 2).fit(Regressor(), data())
    assert relevant(run) == []
    saved = [e for e in read_events(tmp_path / "wd1" / "events.jsonl") if e.kind == "checkpoint_saved"]
    verified = [e for e in read_events(tmp_path / "wd1" / "events.jsonl") if e.kind == "checkpoint_verified"]
    assert saved and verified and verified[0].data["differences"] == 0
    (ckpt,) = (tmp_path / "checkpoints").glob("*.ckpt")

    with watchdog.watch(report_dir=tmp_path / "wd2", summary=False) as run:
        trainer(tmp_path, 4).fit(Regressor(), data(), ckpt_path=str(ckpt))
    assert relevant(run) == []
    kinds = [e.data["target"] for e in read_events(tmp_path / "wd2" / "events.jsonl") if e.kind == "state_loaded"]
    assert "optimizer" in kinds and "scheduler" in kinds


def test_manual_resume_from_a_lightning_checkpoint_that_skips_the_optimizer(tmp_path):
    trainer(tmp_path, 2).fit(Regressor(), data())
    (ckpt,) = (tmp_path / "checkpoints").glob("*.ckpt")
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False) as run:
        model = Regressor()
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["state_dict"])
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50)
        for x, y in data():
            opt.zero_grad()
            model.training_step((x, y), 0).backward()
            opt.step()
        sched.step()
    assert relevant(run) == ["resume/optimizer-not-restored", "resume/scheduler-restarted"]
    f = next(f for f in run.findings if f.code == "resume/optimizer-not-restored")
    assert "optimizer_states[0]" in f.message
    assert "opt.load_state_dict(checkpoint['optimizer_states'][0])" in f.fix


def test_a_second_trainer_resuming_in_the_same_process_is_clean(tmp_path):
    """Issue 12: the first fit's Adam, still alive, is not an optimizer the second fit's complete
    checkpoint "leaves out" (completeness is judged against the optimizers that train now)."""
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False) as run:
        first = Regressor()  # kept alive, as in a notebook or a script that fits twice
        trainer(tmp_path / "a", 2).fit(first, data())
        (ckpt,) = (tmp_path / "a" / "checkpoints").glob("*.ckpt")
        trainer(tmp_path / "b", 4).fit(Regressor(), data(), ckpt_path=str(ckpt))
    assert relevant(run) == []
    assert first.trainer is not None  # the first fit's optimizer really stayed alive
