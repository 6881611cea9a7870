"""Issue 4 on a real Lightning loop: epochs counted from training-pass starts (Lightning never exhausts
its iterators), validation every other epoch, and modes handled by the framework."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import watchdog
from watchdog.core.events import read_events
from eval_loops import eval_codes, finding, make_data, make_model

pl = pytest.importorskip("pytorch_lightning")


class Classifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = make_model()  # Linear, BatchNorm1d, ReLU, Dropout, Linear

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def fit(tmp_path, eval_every, check_val_every_n_epoch):
    torch.manual_seed(0)
    train_loader, val_loader = make_data()
    trainer = pl.Trainer(max_epochs=4, check_val_every_n_epoch=check_val_every_n_epoch, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", default_root_dir=tmp_path)
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, eval_every=eval_every) as run:
        trainer.fit(Classifier(), train_loader, val_loader)
    return run


def test_lightning_validating_every_other_epoch_is_clean_with_eval_every_2(tmp_path):
    run = fit(tmp_path, eval_every=2, check_val_every_n_epoch=2)
    assert run.loop.steps == 24
    assert eval_codes(run) == []


def test_lightning_validating_every_other_epoch_is_clean_by_its_own_setting(tmp_path):
    """check_val_every_n_epoch=2 is the cadence expected (issue 12): no eval_every=2 to repeat."""
    run = fit(tmp_path, eval_every=1, check_val_every_n_epoch=2)
    assert eval_codes(run) == []
    windows = [e.data for e in read_events(tmp_path / "wd" / "events.jsonl") if e.kind == "eval_window"]
    assert [w["evaluated"] for w in windows] == [False, True, False, True]
    assert {w["eval_every"] for w in windows} == {2}


def test_lightning_without_validation_gets_lightnings_fix_not_a_plain_loops(tmp_path):
    torch.manual_seed(0)
    train_loader, val_loader = make_data()  # the validation loader is built, never given to fit()
    trainer = pl.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path)
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False) as run:
        trainer.fit(Classifier(), train_loader)
    f = finding(run, "eval/missing-epochs")
    assert f.severity == "warning" and "val_loader" in f.evidence["held_out_data"]
    assert f.fix.startswith("Give the LightningModule a `validation_step`")
    assert "val_dataloaders=val_loader" in f.fix and "for epoch in range" not in f.fix
