"""Training frameworks: Lightning and the Hugging Face ``Trainer``, watched through their own hooks.

- ``watchdog.integrations.lightning.WatchdogCallback``: a Lightning callback (``lightning.pytorch``
  or ``pytorch_lightning``).
- ``watchdog.integrations.huggingface.WatchdogCallback``: a ``transformers`` ``TrainerCallback``.

Each starts (or joins) the watched run, marks epochs from the framework's epoch hook, and hands
watchdog the trainer: its evaluation settings (the cadence expected), its names for the loaders, the
checkpoints it writes where ``torch.save`` cannot see them. Without a callback (``watchdog run``, or
``watchdog.watch()`` around ``trainer.fit``), the feature's pass capture finds the trainer running
each DataLoader pass and attaches the same callback to it for the run, so the two behave the same.

The callbacks' modules import their framework; this package and its probe, capture and checks do
not (``frameworks.py`` reads the trainers' attributes), so ``import watchdog`` never imports one.
"""

EVENTS = {
    "framework_trainer": "a framework's trainer runs the loop: framework, display, trainer, version, evaluates, "
                         "eval_every (epochs), eval_setting, settings, resumed_from, held_out, eval_fix (the framework's "
                         "way to evaluate every epoch); refs: trainer, held_out",
    "framework_checkpoint": "a framework wrote a checkpoint through its own hook: framework, dir, files, holds "
                            "(weights, optimizer, scheduler), unseen (files torch.save did not write), global_step",
}
VIEWS: tuple = ()


def __getattr__(name: str) -> tuple:
    if name not in ("PROBES", "CHECKS", "PASS_CAPTURES"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .checks import FrameworkCheckpointCheck, FrameworkResumeCheck
    from .probe import FrameworkProbe, TrainerCapture

    globals().update(PROBES=(FrameworkProbe,), CHECKS=(FrameworkResumeCheck, FrameworkCheckpointCheck),
                     PASS_CAPTURES=(TrainerCapture,))
    return globals()[name]
