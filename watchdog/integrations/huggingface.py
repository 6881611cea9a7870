"""watchdog for the Hugging Face ``Trainer``: ``WatchdogCallback``, a ``transformers.TrainerCallback``.

    from watchdog.integrations.huggingface import WatchdogCallback

    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                      callbacks=[WatchdogCallback(report_dir="runs/wd")])
    trainer.train()                           # report: runs/wd/report.html

The callback takes ``watchdog.watch``'s options. It watches each ``trainer.train()`` call: given to
the ``Trainer`` at construction, it wraps that trainer's ``train`` so the run spans the whole call
(its evaluations, its checkpoints, an exception included); added later (``trainer.add_callback``), it
starts the run at ``on_train_begin`` and ends it at ``on_train_end`` (a ``train()`` that raises then
ends its run when the next one begins, or when the process exits). Under ``watchdog run`` or
``watchdog.watch()`` it joins the active run. What it takes from the Trainer rather than guessing:

- **epochs**: one per ``on_epoch_end`` (``watchdog.mark_epoch()``);
- **the evaluation cadence**: ``eval_strategy`` and ``eval_steps`` (``integrations/frameworks.py``);
  with ``eval_strategy="no"`` (the default) and an ``eval_dataset`` given, the evaluation that never
  runs is reported;
- **loader names**: ``train_dataset``, ``eval_dataset`` (a new evaluation DataLoader per
  ``evaluate()`` is one loader to watchdog, and one finding);
- **saves and resumes torch.save cannot see**: the model's weights go through safetensors. At
  ``on_save`` the checkpoint directory is read (file names only): checkpoints holding the weights
  alone (``save_only_model=True``) are reported once at the end (``checkpoint/weights-only``). At the
  start of training, a model loaded from a Trainer checkpoint (``from_pretrained("out/checkpoint-500")``)
  while training starts over at step 0 is a resume that left the optimizer and the LR schedule
  behind (``resume/optimizer-not-restored``, ``resume/scheduler-restarted``). ``optimizer.pt``,
  ``scheduler.pt`` and ``scaler.pt`` go through ``torch.save`` / ``torch.load`` and are checked as
  any checkpoint is.

Without the callback, ``watchdog run train.py`` attaches one to the trainer it finds running the
loop, for that run only: the same findings either way.
"""

from __future__ import annotations

import functools
import os
from atexit import register as at_exit
from typing import Any

try:
    from transformers import TrainerCallback
except ImportError as exc:  # transformers missing, or one of its own imports failing
    raise ImportError(
        "watchdog.integrations.huggingface needs transformers: `pip install transformers` "
        f"(or `pip install torch-watchdog[huggingface]`); importing it failed: {exc}") from exc

from ..core.run import current_run, mark_epoch
from .span import WatchedSpan, guarded, trainer_on_stack

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json", "adapter_model.safetensors", "adapter_model.bin")
# What the Trainer writes with torch.save (the checkpoint probe sees these); the weights it does not.
TORCH_SAVE_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth", "training_args.bin")


class WatchdogCallback(TrainerCallback):
    """Watch ``trainer.train()`` with watchdog: ``Trainer(..., callbacks=[WatchdogCallback(**watch_options)])``.

    Args:
        **watch_options: as ``watchdog.watch(...)``: ``report_dir``, ``dashboard``, ``strict``,
            ``eval_every``, ``fingerprint``, ``checkpoint_verify``, ``summary``. A bad option raises
            ``watchdog.WatchdogUsageError`` here.
    """

    watchdog_callback = True  # the frameworks probe attaches none to a trainer that has this one

    def __init__(self, **watch_options: Any) -> None:
        self._span: WatchedSpan | None = WatchedSpan(watch_options)
        self._wrapped: set[int] = set()  # trainers whose train() this callback wraps
        self._begun = False  # the run was begun at on_train_begin (the callback was added after __init__)
        self._exit_hook = False

    @classmethod
    def observer(cls) -> "WatchdogCallback":
        """The callback the frameworks probe attaches for a run it did not start: it observes only."""
        callback = cls.__new__(cls)
        callback._span, callback._wrapped, callback._begun, callback._exit_hook = None, set(), False, False
        return callback

    # -- the run: each train() call ---------------------------------------------------------------------
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """The Trainer was built with this callback: wrap its ``train`` so the run spans each call."""
        trainer = trainer_on_stack()
        if self._span is None or trainer is None or id(trainer) in self._wrapped:
            return
        span, original = self._span, trainer.train

        @functools.wraps(original)
        def train(*args: Any, **kwargs: Any) -> Any:
            span.begin()
            try:
                result = original(*args, **kwargs)
            except BaseException as exc:
                span.end(exc)
                raise
            span.end()
            return result

        trainer.train = train
        self._wrapped.add(id(trainer))

    def on_train_begin(self, args: Any, state: Any, control: Any, train_dataloader: Any = None,
                       **kwargs: Any) -> None:
        """Training starts: begin the run if ``train()`` is not wrapped; say what the Trainer is set to do."""
        trainer = trainer_on_stack()
        if self._span is not None and (trainer is None or id(trainer) not in self._wrapped):
            if self._begun:  # the last train() raised before on_train_end: its run ends now
                self._span.end(RuntimeError("train() ended without on_train_end"))
            self._span.begin()
            self._begun = True
            if not self._exit_hook:
                at_exit(self._end_at_exit)
                self._exit_hook = True
        self._describe(trainer, train_dataloader)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Training ended: a run begun at ``on_train_begin`` ends (a wrapped ``train()`` ends its own)."""
        if self._span is not None and self._begun:
            self._begun = False
            self._span.end()

    def _end_at_exit(self) -> None:
        if self._span is not None and self._begun:
            self._begun = False
            self._span.end(RuntimeError("the process exited during train()"))

    # -- what the Trainer tells -----------------------------------------------------------------------------
    @guarded
    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """An epoch's optimizer steps are done (its end-of-epoch evaluation comes right after): mark it."""
        mark_epoch()

    @guarded
    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """A checkpoint directory was written: what it holds, by its files (the weights are safetensors,
        unseen by ``torch.save``)."""
        directory = os.path.join(str(args.output_dir), f"checkpoint-{state.global_step}")
        run = current_run()
        if run is None or not os.path.isdir(directory):
            return
        files = sorted(os.listdir(directory))
        weights = any(name in WEIGHT_FILES or name.startswith("model-") for name in files)
        run.emit("framework_checkpoint", {
            "framework": "huggingface", "dir": os.path.abspath(directory), "files": files,
            "global_step": state.global_step,
            "holds": {"weights": weights, "optimizer": "optimizer.pt" in files, "scheduler": "scheduler.pt" in files},
            "unseen": [name for name in files if name not in TORCH_SAVE_FILES and not name.endswith(".json")],
            "setting": "save_only_model=True" if getattr(args, "save_only_model", False) else None,
        })

    @guarded
    def _describe(self, trainer: Any, train_dataloader: Any = None) -> None:
        from .probe import probe_of

        probe = probe_of(current_run())
        if probe is None or trainer is None:
            return
        try:
            batches = len(train_dataloader) if train_dataloader is not None else None
        except TypeError:
            batches = None
        probe.trainer_seen(trainer, train_batches=batches)
