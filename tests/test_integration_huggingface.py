"""Issue 12 on a real Hugging Face ``Trainer``: each bug family it can have, and the same run clean, with
``WatchdogCallback`` and without it (``watchdog.watch()`` around ``train()``, as ``watchdog run`` does).

A one-layer BERT built from a config (randomly initialised: no download), 48 training samples."""

from __future__ import annotations

import io
import json

import pytest
import torch
from torch.utils.data import Dataset, Subset

import watchdog
from watchdog.core.events import read_events

transformers = pytest.importorskip("transformers")
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments  # noqa: E402

from watchdog.integrations.huggingface import WatchdogCallback  # noqa: E402

WITH_AND_WITHOUT = pytest.mark.parametrize("callback", [True, False], ids=["callback", "watch"])
CONFIG = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
              max_position_embeddings=16, num_labels=2)


class Tokens(Dataset):
    def __init__(self, n=64, length=8):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 64, (n, length), generator=g)
        self.labels = self.ids.sum(1) % 2

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


DATA = Tokens()
TRAIN, EVAL = Subset(DATA, range(48)), Subset(DATA, range(48, 64))


def arguments(out, epochs=3, **kwargs):
    kwargs.setdefault("eval_strategy", "epoch")
    kwargs.setdefault("save_strategy", "no")
    kwargs.setdefault("per_device_train_batch_size", 8)
    return TrainingArguments(output_dir=str(out), num_train_epochs=epochs,
                             per_device_eval_batch_size=16, report_to=[], use_cpu=True, disable_tqdm=True,
                             logging_strategy="no", seed=0, **kwargs)


def model():
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(**CONFIG))


def train(tmp_path, callback, trainer_class=Trainer, eval_dataset=EVAL, report="wd", resume=None, make_model=model,
          **kwargs):
    """``Trainer(...).train()`` with the callback (no other watch), or inside ``watchdog.watch()``; the report."""
    callbacks = [WatchdogCallback(report_dir=tmp_path / report, summary=False, dashboard=False)] if callback else []
    trainer = trainer_class(model=make_model(), args=arguments(tmp_path / "out", **kwargs), train_dataset=TRAIN,
                            eval_dataset=eval_dataset, callbacks=callbacks)
    if callback:
        trainer.train(resume_from_checkpoint=resume)
    else:
        with watchdog.watch(report_dir=tmp_path / report, summary=False, dashboard=False):
            trainer.train(resume_from_checkpoint=resume)
    assert watchdog.current_run() is None
    return json.loads((tmp_path / report / "report.json").read_text())


def codes(report, severities=("error", "warning", "info")):
    return sorted(f["code"] for f in report["findings"] if f["severity"] in severities)


def finding(report, code):
    (found,) = [f for f in report["findings"] if f["code"] == code]
    return found


@WITH_AND_WITHOUT
def test_a_correct_training_is_clean_with_the_trainers_names_epochs_and_cadence(tmp_path, callback):
    report = train(tmp_path, callback, save_strategy="epoch")
    assert codes(report) == []
    assert report["summary"]["epochs"] == 3 and report["summary"]["steps"] == 18
    assert {n for loader in report["run"]["loaders"] for n in loader["names"]} == {"train_dataset", "eval_dataset"}
    events = list(read_events(tmp_path / "wd" / "events.jsonl"))
    assert [w.data["evaluated"] for w in events if w.kind == "eval_window"] == [True, True, True]
    saved = [e.data for e in events if e.kind == "framework_checkpoint"]
    assert len(saved) == 3 and saved[0]["holds"] == {"weights": True, "optimizer": True, "scheduler": True}
    assert saved[0]["unseen"] == ["model.safetensors"]  # the weights go through safetensors, not torch.save


def test_each_epoch_line_counts_the_evaluation_the_trainer_runs_after_marking_the_epoch(tmp_path):
    # The Trainer calls on_epoch_end (watchdog's epoch mark) before it evaluates: the line printed per
    # epoch waits for that evaluation, as a loader-ended epoch's line does.
    from watchdog.report.dashboard import Dashboard
    train(tmp_path, True)
    lines = io.StringIO()
    dashboard = Dashboard(mode="lines", line_stream=lines)
    for line in (tmp_path / "wd" / "events.jsonl").read_text().splitlines():
        dashboard.on_event(json.loads(line))
    dashboard.stop()
    printed = lines.getvalue().splitlines()
    assert [ln.split(" · ")[0] for ln in printed] == [f"[watchdog] epoch {e} ended" for e in range(3)]
    assert all(" · eval passes 1 · " in ln for ln in printed), printed


@WITH_AND_WITHOUT
def test_evaluating_on_training_samples_is_one_finding_naming_the_datasets(tmp_path, callback):
    report = train(tmp_path, callback, eval_dataset=Subset(DATA, range(40, 56)))
    assert codes(report) == ["overlap/train-eval"]  # one evaluation DataLoader per evaluate(): one finding
    assert "served by `eval_dataset` were also served by the training loader `train_dataset`" in \
        finding(report, "overlap/train-eval")["message"]


@WITH_AND_WITHOUT
def test_an_eval_dataset_never_evaluated_is_a_missing_evaluation(tmp_path, callback):
    report = train(tmp_path, callback, eval_strategy="no")
    f = finding(report, "eval/missing-epochs")
    assert f["severity"] == "warning" and f["evidence"]["held_out_data"] == ["eval_dataset"]
    assert 'the Hugging Face Trainer is set to eval_strategy="no"' in f["message"]
    assert f["fix"].startswith("Pass `eval_dataset=` to the Trainer and set `eval_strategy=\"epoch\"`")


def test_eval_steps_spanning_two_epochs_is_the_cadence(tmp_path):
    report = train(tmp_path, True, epochs=4, eval_strategy="steps", eval_steps=12)  # 6 steps per epoch
    assert codes(report) == []
    described = [e.data for e in read_events(tmp_path / "wd" / "events.jsonl") if e.kind == "framework_trainer"]
    assert described[-1]["eval_every"] == 2


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A Trainer checkpoint after one epoch (6 steps): model.safetensors, optimizer.pt, scheduler.pt, ..."""
    out = tmp_path_factory.mktemp("first")
    Trainer(model=model(), args=arguments(out, epochs=1, save_strategy="epoch"), train_dataset=TRAIN,
            eval_dataset=EVAL).train()
    return out / "checkpoint-6"


@WITH_AND_WITHOUT
def test_training_again_from_a_checkpoints_weights_leaves_its_optimizer_behind(tmp_path, callback, checkpoint):
    report = train(tmp_path, callback, make_model=lambda: BertForSequenceClassification.from_pretrained(checkpoint))
    assert codes(report, ("error",)) == ["resume/optimizer-not-restored", "resume/scheduler-restarted"]
    f = finding(report, "resume/optimizer-not-restored")
    assert "checkpoint-6 (global step 6, epoch 1)" in f["message"]
    assert f"resume_from_checkpoint={str(checkpoint)!r}" in f["fix"]


@WITH_AND_WITHOUT
def test_resume_from_checkpoint_is_clean(tmp_path, callback, checkpoint):
    report = train(tmp_path, callback, resume=str(checkpoint))
    assert codes(report) == []
    assert report["summary"]["steps"] == 12  # epochs 1 and 2 of 3


def test_checkpoints_of_weights_only_cannot_resume(tmp_path):
    report = train(tmp_path, True, epochs=2, save_strategy="epoch", save_only_model=True)
    assert codes(report) == ["checkpoint/weights-only"]
    f = finding(report, "checkpoint/weights-only")
    assert f["severity"] == "info" and f["evidence"]["checkpoints"] == ["checkpoint-6", "checkpoint-12"]


class KeepsLosses(Trainer):
    """A Trainer subclass that keeps each step's loss tensor (and its graph): the leak."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.history = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self.history.append(loss)
        return loss


def test_a_leak_in_compute_loss_is_located_at_the_users_append(tmp_path, monkeypatch):
    monkeypatch.setenv("WATCHDOG_MEMORY_CENSUS", "every-epoch")
    report = train(tmp_path, True, trainer_class=KeepsLosses, epochs=6, eval_strategy="no", eval_dataset=None,
                   per_device_train_batch_size=4)
    holders = finding(report, "memory/tensor-growth")["evidence"]["holders"]
    line = next(i for i, text in enumerate(open(__file__, encoding="utf-8"), 1) if "self.history.append(loss)" in text)
    # `trainer` holds it (as a script does, to call trainer.train()); the line is the subclass's own
    assert (holders[0]["name"], holders[0]["where"]) == ("trainer.history", f"test_integration_huggingface.py:{line}")
    assert holders[0]["owner"] == "KeepsLosses.compute_loss()"


def test_an_exception_in_train_ends_the_callbacks_run(tmp_path):
    class Fails(Trainer):
        def compute_loss(self, *args, **kwargs):
            if self.state.global_step == 3:
                raise ValueError("user bug in compute_loss")
            return super().compute_loss(*args, **kwargs)

    with pytest.raises(ValueError, match="user bug in compute_loss"):
        train(tmp_path, True, trainer_class=Fails)
    assert watchdog.current_run() is None
    report = json.loads((tmp_path / "wd" / "report.json").read_text())
    assert report["run"]["status"] == "exception" and report["summary"]["steps"] == 3


def test_accelerate_names_the_loaders_as_the_script_does(tmp_path):
    """``accelerator.prepare(loader)`` iterates a base DataLoader the script never sees: it takes the name of
    the prepared loader the script holds (it was 'DataLoader L2 (Subset)')."""
    accelerate = pytest.importorskip("accelerate")
    net = torch.nn.Sequential(torch.nn.Embedding(64, 8), torch.nn.Flatten(), torch.nn.Linear(64, 2))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    accelerator = accelerate.Accelerator(cpu=True)
    train_loader = torch.utils.data.DataLoader(TRAIN, batch_size=8)
    val_loader = torch.utils.data.DataLoader(Subset(DATA, range(40, 56)), batch_size=8)
    net, optimizer, train_loader, val_loader = accelerator.prepare(net, optimizer, train_loader, val_loader)
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        for _ in range(2):
            for batch in train_loader:
                loss = torch.nn.functional.cross_entropy(net(batch["input_ids"]), batch["labels"])
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
            with torch.no_grad():
                for batch in val_loader:
                    net(batch["input_ids"])
    (overlap,) = [f for f in run.findings if f.code == "overlap/train-eval"]
    assert "served by `val_loader` were also served by the training loader `train_loader`" in overlap.message
