"""watchdog for Lightning: ``WatchdogCallback``, for ``lightning.pytorch`` and ``pytorch_lightning`` alike.

    from watchdog.integrations.lightning import WatchdogCallback

    trainer = Trainer(max_epochs=10, callbacks=[WatchdogCallback(report_dir="runs/wd")])
    trainer.fit(model, datamodule=dm)         # report: runs/wd/report.html

The callback takes ``watchdog.watch``'s options. It watches each ``trainer.fit`` (its validation and
checkpoints included): it starts the run at ``setup("fit")`` (or joins the run already active under
``watchdog run`` or ``watchdog.watch()``) and ends it at ``teardown`` or on an exception. What it
takes from Lightning rather than guessing:

- **epochs**: one per ``on_train_epoch_end`` (``watchdog.mark_epoch()``), numbered as Lightning's
  ``current_epoch`` from the fit's first epoch;
- **the evaluation cadence**: ``check_val_every_n_epoch`` and ``val_check_interval`` (so
  ``check_val_every_n_epoch=2`` is clean without ``eval_every=2``; ``integrations/frameworks.py``);
- **loader names**: ``train_dataloader``, ``val_dataloader[1]``, when the script holds no variable
  for a loader;
- **saves and resumes**: nothing extra is needed: Lightning writes its checkpoints with
  ``torch.save`` (into a ``BytesIO``, then the file) and reads them with ``torch.load``, both watched.

Lightning's progress bar stays: with rich installed it is a ``RichProgressBar`` (a rich ``Live``
display), and watchdog's own dashboard then gives way to its one line per epoch (see the README).
Without the callback, ``watchdog run train.py`` attaches one to the trainer it finds running the
loop, for that run only: the same findings either way.
"""

from __future__ import annotations

import signal
from typing import Any

from ..core.run import current_run, mark_epoch
from .span import WatchedSpan, guarded

_BASES: list[type] = []
try:
    from lightning.pytorch import Callback as _LightningCallback

    _BASES.append(_LightningCallback)
except ImportError:
    pass
try:
    from pytorch_lightning import Callback as _PytorchLightningCallback

    _BASES.append(_PytorchLightningCallback)
except ImportError:
    pass
if not _BASES:
    raise ImportError(
        "watchdog.integrations.lightning needs Lightning: `pip install lightning` (or `pip install "
        "pytorch-lightning`), or `pip install torch-watchdog[lightning]`.")


class WatchdogCallback(*_BASES):  # type: ignore[misc]
    """Watch ``trainer.fit`` with watchdog: ``Trainer(callbacks=[WatchdogCallback(**watch_options)])``.

    Args:
        **watch_options: as ``watchdog.watch(...)``: ``report_dir``, ``dashboard``, ``strict``,
            ``eval_every``, ``fingerprint``, ``checkpoint_verify``, ``summary``. A bad option raises
            ``watchdog.WatchdogUsageError`` here.
    """

    watchdog_callback = True  # the frameworks probe attaches none to a trainer that has this one

    def __init__(self, **watch_options: Any) -> None:
        super().__init__()
        self._span: WatchedSpan | None = WatchedSpan(watch_options)

    @classmethod
    def observer(cls) -> "WatchdogCallback":
        """The callback the frameworks probe attaches for a run it did not start: it observes only."""
        callback = cls.__new__(cls)
        callback._span = None
        return callback

    # -- the run: started at fit's setup, ended at teardown or on an exception ---------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """``fit`` starts the watched run (or joins the active one); other stages run inside a run only."""
        if self._span is not None and stage == "fit":
            self._span.begin()
            self._describe(trainer)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """The fit ended: the run ends (report written) or, if it was joined, goes on."""
        if self._span is not None and stage == "fit":
            self._span.end()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """The fit raised (or was interrupted): the run ends with that status; Lightning re-raises.

        Lightning's signal connector put its SIGTERM handler over the run's and puts back, after this
        hook, the one it found: the run's, which the run could not remove. It is told the handler that
        was there before the run instead."""
        if self._span is None or self._span.entered == 0:
            return
        run = current_run()
        handlers = getattr(run, "_previous_sigterm", None) if run is not None and run.status == "running" else None
        self._span.end(exception)
        if run is None or run.status == "running":
            return  # a joined run goes on: its handler stays
        originals = getattr(getattr(trainer, "_signal_connector", None), "_original_handlers", None)
        if handlers is not None and isinstance(originals, dict) and originals.get(signal.SIGTERM) is handlers[0]:
            originals[signal.SIGTERM] = handlers[1]

    # -- what Lightning tells -------------------------------------------------------------------------------
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Training starts: its settings are complete (batches per epoch known): the cadence expected."""
        self._describe(trainer)

    @guarded
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """An epoch's training (and its validation, which runs before this hook) is over: mark it.

        Not when Lightning is closing an epoch it restored from a checkpoint as complete (``fit(...,
        ckpt_path=...)`` after a save at an epoch's end calls this hook once more for that epoch, with
        ``fit_loop.restarting`` set and no batch trained): no training ran, and counting it would put
        watchdog's epochs one ahead of Lightning's ``current_epoch`` for the rest of the run."""
        if getattr(getattr(trainer, "fit_loop", None), "restarting", False) is True:
            return
        mark_epoch()

    @guarded
    def _describe(self, trainer: Any) -> None:
        from .probe import probe_of

        probe = probe_of(current_run())
        if probe is not None:
            probe.trainer_seen(trainer)

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save: checkpoints are byte-identical with and without the callback."""
        return {}
