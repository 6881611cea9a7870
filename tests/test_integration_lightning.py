"""Issue 12 on a real Lightning Trainer: each bug family Lightning can have, and the same run clean,
with ``WatchdogCallback`` and without it (``watchdog.watch()`` around ``fit``, as ``watchdog run`` does).

Tiny models on CPU, a few batches per epoch; no downloads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset, random_split

import watchdog
from watchdog.core.events import read_events

pl = pytest.importorskip("pytorch_lightning")
from watchdog.integrations.lightning import WatchdogCallback  # noqa: E402

WITH_AND_WITHOUT = pytest.mark.parametrize("callback", [True, False], ids=["callback", "watch"])


class Classifier(pl.LightningModule):
    def __init__(self, keep_losses=False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
        self.keep_losses = keep_losses
        self.losses = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        if self.keep_losses:
            self.losses.append(loss)  # the leak: every step's loss and its graph
        else:
            self.losses.append(loss.item())
        self.log("train_loss", loss)  # Lightning keeps the last logged value: its state, not a leak
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-2)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1)}


class LeakyClassifier(Classifier):
    def __init__(self):
        super().__init__(keep_losses=True)


class Data(pl.LightningDataModule):
    """128 samples split once, seeded; ``leaky``: validation on a slice of the training part."""

    def __init__(self, leaky=False, batch_size=32):
        super().__init__()
        self.leaky, self.batch_size = leaky, batch_size

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        full = TensorDataset(torch.randn(128, 8, generator=g), torch.randint(0, 2, (128,), generator=g))
        self.train_ds, self.val_ds = random_split(full, [96, 32], generator=torch.Generator().manual_seed(0))
        if self.leaky:
            self.val_ds = Subset(self.train_ds, range(32))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=32)


def trainer(tmp_path, callback, epochs=4, report="wd", **kwargs):
    kwargs.setdefault("enable_checkpointing", False)
    callbacks = kwargs.pop("callbacks", [])
    if callback:
        callbacks = [*callbacks, WatchdogCallback(report_dir=tmp_path / report, summary=False, dashboard=False)]
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path),
                      callbacks=callbacks, **kwargs)


def fit(tmp_path, callback, model=Classifier, data=None, report="wd", **trainer_kwargs):
    """``trainer.fit(model(), ...)`` with the callback (no other watch), or inside ``watchdog.watch()``
    without it; the report. The model is made in the call, so only Lightning holds it."""
    torch.manual_seed(0)
    data = data or Data()
    t = trainer(tmp_path, callback, report=report, **trainer_kwargs)
    if callback:
        t.fit(model(), datamodule=data)
    else:
        with watchdog.watch(report_dir=tmp_path / report, summary=False, dashboard=False):
            t.fit(model(), datamodule=data)
    assert watchdog.current_run() is None
    return json.loads((tmp_path / report / "report.json").read_text())


def codes(report, severities=("error", "warning", "info")):
    return sorted(f["code"] for f in report["findings"] if f["severity"] in severities)


def finding(report, code):
    (found,) = [f for f in report["findings"] if f["code"] == code]
    return found


@WITH_AND_WITHOUT
def test_a_correct_fit_is_clean_with_its_names_epochs_and_cadence(tmp_path, callback):
    report = fit(tmp_path, callback, check_val_every_n_epoch=2, enable_checkpointing=True)
    assert codes(report) == []
    assert report["summary"]["epochs"] == 4 and report["run"]["epoch_source"] == "mark"
    assert sorted(n for loader in report["run"]["loaders"] for n in loader["names"]) == [
        "train_dataloader", "val_dataloader"]
    events = list(read_events(tmp_path / "wd" / "events.jsonl"))
    (described, *_) = [e.data for e in events if e.kind == "framework_trainer"]
    assert described["framework"] == "lightning" and described["eval_every"] == 2
    assert [w.data["evaluated"] for w in events if w.kind == "eval_window"] == [False, True, False, True]
    assert [e for e in events if e.kind == "checkpoint_verified"]  # Lightning's own saves, through torch.save


@WITH_AND_WITHOUT
def test_validation_on_training_data_names_lightnings_loaders(tmp_path, callback):
    report = fit(tmp_path, callback, data=Data(leaky=True))
    assert codes(report) == ["overlap/train-eval"]
    f = finding(report, "overlap/train-eval")
    assert "served by `val_dataloader` were also served by the training loader `train_dataloader`" in f["message"]
    assert f["where"].startswith("test_integration_lightning.py:")


@WITH_AND_WITHOUT
def test_validation_switched_off_is_a_missing_evaluation_with_held_out_data(tmp_path, callback):
    report = fit(tmp_path, callback, limit_val_batches=0)
    f = finding(report, "eval/missing-epochs")
    assert f["severity"] == "warning" and f["evidence"]["no_evaluation"]
    assert "datamodule.val_ds" in f["evidence"]["held_out_data"]
    assert "Lightning is set to limit_val_batches=0" in f["message"]


class SaveWeightsEachEpoch(pl.Callback):
    """A hand-written save that leaves the optimizer and the scheduler out."""

    def __init__(self, path):
        self.path = path

    def on_train_epoch_end(self, trainer, pl_module):
        torch.save({"state_dict": pl_module.state_dict(), "epoch": trainer.current_epoch}, self.path)


@WITH_AND_WITHOUT
def test_an_incomplete_checkpoint_written_from_a_callback(tmp_path, callback):
    report = fit(tmp_path, callback, epochs=2, callbacks=[SaveWeightsEachEpoch(tmp_path / "last.pt")])
    assert codes(report, ("error",)) == ["checkpoint/missing-optimizer-state", "checkpoint/missing-scheduler-state"]


@WITH_AND_WITHOUT
def test_a_resume_that_loads_the_weights_only(tmp_path, callback):
    """``load_from_checkpoint`` then ``fit`` without ``ckpt_path``: Adam and the schedule start over. The
    load happens before ``fit``, so the callback joins a run that ``watchdog.watch()`` (or ``watchdog run``)
    holds; with ``ckpt_path`` the same resume is clean (``test_checkpoint_lightning.py``)."""
    torch.manual_seed(0)
    trainer(tmp_path, False, epochs=2, enable_checkpointing=True).fit(Classifier(), datamodule=Data())
    (ckpt,) = (tmp_path / "checkpoints").glob("*.ckpt")
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        model = Classifier.load_from_checkpoint(ckpt)
        trainer(tmp_path, callback, epochs=2, report="unused").fit(model, datamodule=Data())
    assert sorted(f.code for f in run.findings if f.severity == "error") == [
        "resume/optimizer-not-restored", "resume/scheduler-restarted"]
    assert not (tmp_path / "unused").exists()  # the callback joined the active run


@pytest.fixture
def census_every_epoch(monkeypatch):
    monkeypatch.setenv("WATCHDOG_MEMORY_CENSUS", "every-epoch")


@WITH_AND_WITHOUT
def test_a_leak_in_training_step_is_located_at_the_users_append(tmp_path, callback, census_every_epoch):
    report = fit(tmp_path, callback, model=LeakyClassifier, data=Data(batch_size=8), epochs=6, log_every_n_steps=1)
    f = finding(report, "memory/tensor-growth")
    holders = f["evidence"]["holders"]
    assert holders[0]["name"] == "self.losses" and holders[0]["owner"] == "Classifier.training_step()"
    line = next(i for i, text in enumerate(open(__file__, encoding="utf-8"), 1) if "self.losses.append(loss)" in text)
    assert holders[0]["where"] == f"test_integration_lightning.py:{line}"
    assert f["where"] == f"test_integration_lightning.py:{line} in Classifier.training_step()"
    assert not [h for h in holders if "trainer" in h["name"] or "_logger_connector" in h["name"]]


def test_the_same_model_keeping_numbers_is_clean_under_a_census(tmp_path, census_every_epoch):
    report = fit(tmp_path, True, model=Classifier, data=Data(batch_size=8), epochs=6, log_every_n_steps=1)
    assert codes(report) == []


def test_val_check_interval_in_batches_across_epochs_is_the_cadence(tmp_path):
    """``check_val_every_n_epoch=None, val_check_interval=6``: validation every 6 batches of 3 per epoch,
    that is every other epoch."""
    report = fit(tmp_path, True, check_val_every_n_epoch=None, val_check_interval=6)
    assert codes(report) == []
    (described, *_) = [e.data for e in read_events(tmp_path / "wd" / "events.jsonl")
                       if e.kind == "framework_trainer" and e.data["eval_every"]]
    assert described["eval_every"] == 2 and "val_check_interval=6" in described["eval_setting"]


class Boom(Classifier):
    def training_step(self, batch, batch_idx):
        if self.global_step == 5:
            raise ValueError("user bug in training_step")
        return super().training_step(batch, batch_idx)


def test_an_exception_ends_the_callbacks_run_and_comes_out_unchanged(tmp_path):
    with pytest.raises(ValueError, match="user bug in training_step"):
        trainer(tmp_path, True).fit(Boom(), datamodule=Data())
    assert watchdog.current_run() is None
    report = json.loads((tmp_path / "wd" / "report.json").read_text())
    assert report["run"]["status"] == "exception" and report["summary"]["steps"] == 5


def test_a_bad_option_is_refused_when_the_callback_is_made():
    with pytest.raises(watchdog.WatchdogUsageError, match="eval_every"):
        WatchdogCallback(eval_every=0)


def test_the_callback_adds_nothing_to_lightnings_checkpoints(tmp_path):
    fit(tmp_path, True, epochs=1, enable_checkpointing=True)
    (ckpt,) = (tmp_path / "checkpoints").glob("*.ckpt")
    assert not any("Watchdog" in key for key in torch.load(ckpt, weights_only=False)["callbacks"])


def test_a_rich_progress_bar_makes_the_dashboard_give_way(tmp_path, monkeypatch):
    """Lightning's RichProgressBar (its default with rich installed) starts a rich Live at training start:
    watchdog's panel comes down before it draws, and the run goes on with one line per epoch."""
    import rich.live

    import watchdog.report.dashboard as dashboard_mod
    from pytorch_lightning.callbacks import RichProgressBar

    monkeypatch.setattr(dashboard_mod, "display_mode", lambda stdout=None: "live")
    original_start, real_stdout = rich.live.Live.start, sys.stdout
    order = []
    monkeypatch.setattr(dashboard_mod.Dashboard, "give_way",
                        lambda self, real=dashboard_mod.Dashboard.give_way: (order.append("gave way"), real(self))[1])
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False) as run:
        (dashboard,) = [p.dashboard for p in run.probes if p.name == "presentation"]
        assert dashboard.mode == "live"

        class Watch(pl.Callback):
            def on_train_start(self, trainer, pl_module):
                order.append(f"their live starts: ours is {'up' if dashboard._live is not None else 'down'}")

        t = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                       enable_model_summary=False, num_sanity_val_steps=0,
                       callbacks=[RichProgressBar(), Watch()])
        t.fit(Classifier(), datamodule=Data())
        assert dashboard.mode == "lines" and dashboard.gave_way
    assert order[0] == "gave way" and order[1] == "their live starts: ours is down"
    assert rich.live.Live.start is original_start and sys.stdout is real_stdout
    assert not [f for f in run.findings if f.code == "watchdog/internal-error"]


def test_importing_watchdog_imports_no_framework_and_a_missing_one_names_the_fix():
    code = ("import sys, watchdog, watchdog.integrations\n"
            "from watchdog.core import registry\n"
            "registry.all_probes(); registry.all_checks(); registry.pass_captures()\n"
            "print(sorted(m for m in ('lightning', 'pytorch_lightning', 'transformers', 'accelerate') if m in sys.modules))\n"
            "sys.modules['lightning'] = sys.modules['lightning.pytorch'] = sys.modules['pytorch_lightning'] = None\n"
            "try:\n    import watchdog.integrations.lightning\nexcept ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()[:2]
    assert first == "[]"
    assert "pip install lightning" in second and "torch-watchdog[lightning]" in second


SCRIPT = '''
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split
import pytorch_lightning as pl


class Classifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(8, 2)

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", nn.functional.cross_entropy(self.net(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Data(pl.LightningDataModule):
    def setup(self, stage=None):
        full = TensorDataset(torch.randn(96, 8), torch.randint(0, 2, (96,)))
        self.train_ds, self.val_ds = random_split(full, [64, 32], generator=torch.Generator().manual_seed(0))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=16)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=16)


pl.Trainer(max_epochs=4, check_val_every_n_epoch=2, logger=False, enable_checkpointing=False,
           accelerator="cpu").fit(Classifier(), datamodule=Data())
'''


def test_watchdog_run_on_an_unchanged_lightning_script_reads_the_trainer(tmp_path):
    """The issue's own case, without any callback: check_val_every_n_epoch=2 gave 'Epochs 0, 2 of 4 had no
    evaluation' and the loaders were 'DataLoader L2 (Subset)'."""
    (tmp_path / "train.py").write_text(SCRIPT)
    out = subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", "wd", "train.py"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "wd" / "report.json").read_text())
    assert codes(report) == [] and report["summary"]["epochs"] == 4
    assert sorted(n for loader in report["run"]["loaders"] for n in loader["names"]) == [
        "train_dataloader", "val_dataloader"]


def test_one_callback_class_serves_lightning_pytorch_too(tmp_path):
    """With the unified ``lightning`` package installed too, the same class is a callback of both."""
    L = pytest.importorskip("lightning.pytorch")
    assert issubclass(WatchdogCallback, L.Callback) and issubclass(WatchdogCallback, pl.Callback)

    class Small(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(8, 2)

        def training_step(self, batch, batch_idx):
            return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", nn.functional.cross_entropy(self.net(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = Data()
    data.setup()
    L.Trainer(max_epochs=4, check_val_every_n_epoch=2, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
              callbacks=[WatchdogCallback(report_dir=tmp_path / "wd", summary=False, dashboard=False)]).fit(
        Small(), data.train_dataloader(), data.val_dataloader())
    report = json.loads((tmp_path / "wd" / "report.json").read_text())
    assert codes(report) == [] and report["summary"]["epochs"] == 4 and report["run"]["epoch_source"] == "mark"


def test_a_frameworks_own_container_is_its_state_and_the_users_is_not():
    """The walk behind the leak finding, on a real Trainer's logger connector: Lightning's last logged
    values (a dict holding this epoch's new tensors) are the framework's state, not a holder to report;
    the same dict in the user's code is reported."""
    import gc

    from watchdog.memory.census import take_census
    from watchdog.memory.holders import find_holders

    t = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    gc.collect()
    before = take_census()
    t._logger_connector._callback_metrics = {"train_loss": torch.ones(()), "val_loss": torch.ones(()), "epoch": 3}
    last_logged = {"train_loss": torch.ones(()), "val_loss": torch.ones(()), "epoch": 3}
    holders = find_holders(take_census(previous=before).compare_to(before), budget_s=60)
    names = [h.name for h in holders if h.kind != "graph-only"]
    assert "last_logged" in names and not [n for n in names if "_callback_metrics" in n]
    del last_logged


@WITH_AND_WITHOUT
def test_a_resumed_fit_numbers_its_epochs_as_lightning_does(tmp_path, callback):
    """A second Trainer resuming from a checkpoint saved at an epoch's end: Lightning closes that restored
    epoch once more (``on_train_epoch_end`` with no batch trained); watchdog counts the epochs that
    trained, numbered as Lightning's ``current_epoch`` (it said 'epoch 6' for Lightning's epoch 5 after
    the resume, one ahead for the rest of the run)."""
    torch.manual_seed(0)
    kw = dict(check_val_every_n_epoch=2, enable_checkpointing=True)

    def both_fits():
        first = trainer(tmp_path, callback, epochs=2, report="wd1", **kw)
        first.fit(Classifier(), datamodule=Data())
        ckpt = first.checkpoint_callback.last_model_path or first.checkpoint_callback.best_model_path
        trainer(tmp_path, callback, epochs=4, report="wd2", **kw).fit(Classifier(), datamodule=Data(),
                                                                       ckpt_path=ckpt)

    if callback:  # each Trainer's callback is its own run
        both_fits()
        report = json.loads((tmp_path / "wd2" / "report.json").read_text())
        assert report["summary"]["epochs"] == 2 and report["summary"]["steps"] == 6
    else:  # one run around both fits, as `watchdog run` sees a script
        with watchdog.watch(report_dir=tmp_path / "wd2", summary=False, dashboard=False):
            both_fits()
        report = json.loads((tmp_path / "wd2" / "report.json").read_text())
        assert [e["epoch"] for e in report["epochs"]] == [0, 1, 2, 3]
        assert [e["steps"] for e in report["epochs"]] == [3, 6, 9, 12]  # every epoch trained
    assert codes(report) == []
