"""The frameworks probe and its pass capture: which framework trainer runs the loop, told once per trainer.

``TrainerCapture`` (a pass capture, ``core/loaders.py``'s protocol) runs when each DataLoader pass
begins, before the pass is announced: it looks up the stack for a framework's trainer
(``frameworks.find_trainer``: nothing to do when no framework is imported), has the trainer's model
watched (its forwards tell evaluation passes, even when no user frame holds the model) and names the loader as
the framework does (``train_dataloader``, ``val_dataloader``, ``eval_dataset``) when the user's
frames give it no name. A base loader iterated by ``accelerate``'s wrapper takes the name the user's
frames give the wrapper. Per index batch it costs nothing.

``FrameworkProbe`` keeps the trainers seen: the first time one runs the loop, watchdog's callback for
its framework is attached to it (unless the user attached one) and removed when the run ends, and its
settings go out as a ``framework_trainer`` event, again whenever they change (Lightning knows its
batches per epoch only once training starts). The callbacks reach the probe with :func:`probe_of`.
"""

from __future__ import annotations

import importlib
import sys
import weakref
from typing import TYPE_CHECKING, Any

from ..core.frames import UserFrame, is_framework_file, names_in_frames, preferred_name, release_locals_snapshot
from .frameworks import Framework, find_trainer, framework_of

if TYPE_CHECKING:
    from ..core.loaders import PassRecord
    from ..core.run import Run


def probe_of(run: Any) -> "FrameworkProbe | None":
    """The run's frameworks probe (None when it is not installed: the run is not watched)."""
    return next((p for p in getattr(run, "probes", ()) if isinstance(p, FrameworkProbe)), None)


class FrameworkProbe:
    name = "frameworks"

    def install(self, run: "Run") -> None:
        self.run = run
        self.trainers: dict[int, tuple[Any, Framework]] = {}  # id -> (weakref to the trainer, its framework)
        self.described: dict[int, dict[str, Any]] = {}  # id(trainer) -> the settings last emitted
        self.attached: list[tuple[Any, Framework, Any]] = []  # (trainer ref, framework, callback) we attached
        run.patches.add_undo(self._detach_all, "frameworks: watchdog's callbacks attached to trainers")

    def trainer_seen(self, trainer: Any, *, train_batches: int | None = None) -> None:
        """``trainer`` runs the loop: attach watchdog's callback to it unless it has one, and say what it is
        set to do (again when that changed)."""
        framework = framework_of(trainer)
        if framework is None or self.run.is_disabled("probe:frameworks"):
            return
        known = self.trainers.get(id(trainer))
        if known is None or known[0]() is not trainer:
            self.trainers[id(trainer)] = (weakref.ref(trainer), framework)
            self.described.pop(id(trainer), None)
            if not any(getattr(cb, "watchdog_callback", False) for cb in framework.callbacks(trainer)):
                callback = importlib.import_module(framework.callback_module).WatchdogCallback.observer()
                framework.add_callback(trainer, callback)
                self.attached.append((weakref.ref(trainer), framework, callback))
        if framework.training(trainer):
            self.run.loop.marks_end_epochs()  # the callback marks each epoch at the framework's epoch hook
        settings = framework.settings(trainer, train_batches)
        data = {**settings.data(), "eval_fix": framework.eval_fix}
        if self.described.get(id(trainer)) == data:
            return
        self.described[id(trainer)] = data
        self.run.emit("framework_trainer", data, refs={"trainer": trainer, "held_out": settings.held_out})

    def _detach_all(self) -> None:
        while self.attached:
            ref, framework, callback = self.attached.pop()
            trainer = ref()
            if trainer is not None:
                framework.remove_callback(trainer, callback)


class _NoSamples:
    """A pass as the trainer capture sees it: nothing per batch, nothing added to its end."""

    __slots__ = ()
    note_sampled = None  # the DataLoader probe calls nothing per index batch for this capture
    sampled_any = False
    reads_batches = False

    def read_batch(self, data: Any) -> bool:
        return False

    def flush(self, record: Any, count: int) -> None:
        pass

    def stop(self) -> None:
        pass

    def end(self, record: Any, count: int) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {}


_NO_SAMPLES = _NoSamples()


class TrainerCapture:
    """At each pass start: the framework trainer running it, and the framework's name for its loader."""

    name = "frameworks"

    def __init__(self, run: "Run", dataset_keys: Any):
        self.run = run

    def begin_pass(self, record: "PassRecord", dataset: Any, frames: list) -> _NoSamples:
        if not self.run.is_disabled("probe:frameworks"):
            try:
                self._find_trainer(record, frames)
            except Exception as exc:  # the frameworks' part switches off; the pass is recorded as ever
                self.run.internal_error("probe:frameworks", exc)
        return _NO_SAMPLES

    def _find_trainer(self, record: "PassRecord", frames: list) -> None:
        loader = record.loader.ref()
        found = find_trainer(sys._getframe(2))
        if found is not None:
            framework, trainer = found
            probe = probe_of(self.run)
            if probe is not None:
                probe.trainer_seen(trainer)
            model = framework.model(trainer)
            if model is not None:  # the trainer's model, as if the user's frame held it as `model`
                self.run.loop.discover_models([UserFrame(type(trainer).__name__, "<trainer>", 0,
                                                         namespace_copy={"model": model})])
            if loader is not None and not record.loader.names:
                name = framework.loader_name(trainer, loader)
                if name is not None:
                    record.loader.names.append(name)
        elif loader is not None and not record.loader.names:
            wrapper = _accelerate_wrapper(sys._getframe(2), loader)
            if wrapper is not None:
                name = preferred_name(names_in_frames({id(wrapper): wrapper}, frames).get(id(wrapper), []))
                if name is not None:
                    record.loader.names.append(name)


def _accelerate_wrapper(frame: Any, loader: Any, depth: int = 16) -> Any:
    """The ``accelerate`` data loader (``DataLoaderShard``, ...) iterating ``loader`` as its
    ``base_dataloader``, from its ``__iter__`` frame on the stack; None if there is none."""
    if "accelerate" not in sys.modules:
        return None
    while frame is not None and depth > 0:
        code = frame.f_code
        if code.co_name == "__iter__" and code.co_varnames[:1] == ("self",) and is_framework_file(code.co_filename):
            try:
                candidate = frame.f_locals.get("self")
            finally:
                release_locals_snapshot(frame)
            if getattr(candidate, "base_dataloader", None) is loader:
                return candidate
        frame = frame.f_back
        depth -= 1
    return None
