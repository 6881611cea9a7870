"""The training loop's state: steps, epochs, optimizers, models, loaders, open passes, step alarms.

One typed object per run (``run.loop``), owned and written only by the loop probes
(``core/training.py``: steps, optimizers, models, step alarms; ``core/loaders.py``: loaders and the
open passes) and by the epoch rules below. Everyone else (checks, other probes, the dashboard)
reads it through read-only properties; there is nothing to set.

The epoch rules live here and nowhere else:

* an epoch ends when a pass over the run's primary training loader ends (the first loader whose
  pass trained; a loader rebuilt each epoch at the same place takes over from the freed one, and
  a loader over the same dataset counts as the same), unless the user marks epochs;
* from the first ``watchdog.mark_epoch()`` on (or from the moment a framework's trainer, whose epoch
  hook watchdog's callback marks, is seen running the loop: ``marks_end_epochs``), epochs are
  counted by marks only; a first mark that
  follows a loader-ended epoch, with no optimizer step since or no pass over the training loader
  open, confirms that epoch instead of counting it twice (``accelerate`` fetches one batch ahead, so
  its loader's pass ends before the epoch's last step; the Hugging Face ``Trainer``'s epoch hook
  marks the epoch after it).
"""
from __future__ import annotations

import heapq
import itertools
import sys
import threading
import weakref
from types import MappingProxyType
from typing import Any, Callable, Mapping


class PassStack(list):
    """One thread's open DataLoader passes, innermost last (a list that can be weakly referenced)."""

    __slots__ = ("__weakref__",)


class LoopState:
    """What the training loop has done so far (read-only outside the loop probes)."""

    def __init__(self, emit: Callable[[str, dict], Any], internal_error: Callable[[str, BaseException], None]):
        self._emit = emit
        self._internal_error = internal_error
        self._steps = 0
        self._epoch = 0
        self._epoch_source: str | None = None  # "loader" | "mark"
        self._primary_train_loader: Any = None
        self._last_epoch_end_steps: int | None = None
        self._optimizers: dict[int, Any] = {}  # id -> OptimizerInfo, optimizers that stepped
        self._models: dict[int, Any] = {}  # id -> ModelInfo, root models found near the loop
        self._loaders: dict[int, Any] = {}  # id -> LoaderInfo, DataLoaders iterated
        self._thread_passes = threading.local()  # .stack: this thread's open passes
        self._pass_stacks: "weakref.WeakValueDictionary[int, PassStack]" = weakref.WeakValueDictionary()
        self._pass_stacks_lock = threading.Lock()
        self._pass_stack_numbers = itertools.count()  # stacks in the order their threads opened them
        self._alarms: list[tuple[int, int, Callable[[], Any]]] = []
        self._alarm_numbers = itertools.count()
        self._next_step_alarm = sys.maxsize  # the hot path compares steps with this, nothing more
        self._stepping_optimizer: Any = None
        self._model_discovery: Callable[[list], None] | None = None  # set by the training probe

    # -- read-only views ----------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Optimizer steps so far (all optimizers)."""
        return self._steps

    @property
    def epoch(self) -> int:
        """Completed epochs (0 until the first one closes)."""
        return self._epoch

    @property
    def user_epoch(self) -> int:
        """The epoch as the user's own loop numbers it (``for epoch in range(n)``, from 0): the epoch in
        progress, or the one whose training just ended while no optimizer step has run since (its
        evaluation, its checkpoint). Findings are stamped with it."""
        if self._epoch > 0 and self._last_epoch_end_steps == self._steps:
            return self._epoch - 1
        return self._epoch

    @property
    def epoch_source(self) -> str | None:
        """What ends epochs: ``"loader"`` (training-loader passes), ``"mark"`` (``watchdog.mark_epoch()``) or None yet."""
        return self._epoch_source

    @property
    def primary_train_loader(self) -> Any:
        """The ``LoaderInfo`` whose passes end epochs (None before the first training pass ended)."""
        return self._primary_train_loader

    @property
    def optimizers(self) -> Mapping[int, Any]:
        """``{id: OptimizerInfo}`` of the optimizers that stepped."""
        return MappingProxyType(self._optimizers)

    @property
    def models(self) -> Mapping[int, Any]:
        """``{id: ModelInfo}`` of the root models found near the training loop."""
        return MappingProxyType(self._models)

    @property
    def loaders(self) -> Mapping[int, Any]:
        """``{id: LoaderInfo}`` of the DataLoaders iterated."""
        return MappingProxyType(self._loaders)

    def optimizers_training_now(self) -> list[Any]:
        """The optimizers that train now: every live optimizer that stepped, except one whose last step
        came before another optimizer's first (a later fit's optimizer replaced it; optimizers that
        alternate, as a GAN's do, all train)."""
        infos = [info for info in self._optimizers.values() if info.ref() is not None]
        return [a for a in infos if not any(b.first_step > a.last_step for b in infos if b is not a)]

    @property
    def stepping_optimizer(self) -> Any:
        """Inside a step alarm: the optimizer whose step rang it (None elsewhere)."""
        return self._stepping_optimizer

    @property
    def open_passes(self) -> PassStack:
        """This thread's DataLoader passes in progress, innermost last.

        One stack per thread: steps, ``backward()`` calls and forwards are counted on the innermost
        pass of the thread that makes them, so threads training their own loops stay apart.
        """
        try:
            return self._thread_passes.stack
        except AttributeError:
            stack = self._thread_passes.stack = PassStack()
            with self._pass_stacks_lock:
                self._pass_stacks[next(self._pass_stack_numbers)] = stack
            return stack

    def all_open_passes(self) -> list[Any]:
        """The open passes of every thread (each thread's innermost last), for the run end and display."""
        with self._pass_stacks_lock:
            stacks = [stack for _, stack in sorted(self._pass_stacks.items(), key=lambda item: item[0])]
        return [record for stack in stacks for record in list(stack)]

    # -- requests other parts may make ----------------------------------------------------------------
    def at_step(self, step: int, fn: Callable[[], Any]) -> None:
        """Call ``fn()`` right after the optimizer step that brings ``steps`` to ``step`` (or later).

        The only per-step cost is comparing ``steps`` with the next alarm's step.
        """
        heapq.heappush(self._alarms, (int(step), next(self._alarm_numbers), fn))
        self._next_step_alarm = self._alarms[0][0]

    def discover_models(self, frames: list) -> None:
        """Hook the root models found in these user frames (boundaries only; the training probe does it)."""
        if self._model_discovery is not None:
            self._model_discovery(frames)

    # -- written by the loop probes -------------------------------------------------------------------
    def _ring_alarms(self, optimizer: Any) -> None:
        """After a step reached the next alarm: run every alarm that is due."""
        alarms = self._alarms
        self._stepping_optimizer = optimizer
        try:
            while alarms and alarms[0][0] <= self._steps:
                _, _, fn = heapq.heappop(alarms)
                try:
                    fn()
                except Exception as exc:
                    self._internal_error(f"alarm:{getattr(fn, '__qualname__', fn)}", exc)
        finally:
            self._stepping_optimizer = None
            self._next_step_alarm = alarms[0][0] if alarms else sys.maxsize

    # -- the epoch rules ------------------------------------------------------------------------------
    def training_pass_ended(self, loader_info: Any) -> None:
        """A pass over a training loader ended: an epoch, unless the user marks epochs."""
        if self._primary_train_loader is None:
            self._primary_train_loader = loader_info
            self._epoch_source = self._epoch_source or "loader"
        if self._epoch_source == "mark":
            return
        primary = self._primary_train_loader
        if primary.ref() is None and primary.dataset_ref() is None and primary.where == loader_info.where is not None:
            self._primary_train_loader = primary = loader_info  # rebuilt in the epoch loop: its successor
        if loader_info is primary or loader_info.dataset_id == primary.dataset_id:
            self._end_epoch("loader", loader_info.label)

    def marks_end_epochs(self) -> None:
        """A framework's epoch hook will mark every epoch (watchdog's callbacks): if no epoch has ended
        yet, marks alone end epochs from now on (a training pass that ends before the epoch's last
        step, as ``accelerate``'s one-batch-ahead fetch makes it, then ends none)."""
        if self._epoch == 0:
            self._epoch_source = "mark"

    def mark_epoch(self, before_epoch_end: Callable[[], None]) -> None:
        """The user's explicit epoch boundary; ``before_epoch_end`` runs first (the run's boundaries)."""
        confirms = (self._epoch_source == "loader" and self._epoch > 0
                    and (self._last_epoch_end_steps == self._steps or not self._training_pass_open()))
        self._epoch_source = "mark"
        before_epoch_end()
        if not confirms:
            self._end_epoch("mark", None)

    def _training_pass_open(self) -> bool:
        """Whether a pass over the primary training loader (or its dataset) is in progress."""
        primary = self._primary_train_loader
        if primary is None:
            return False
        return any(record.loader is primary or record.loader.dataset_id == primary.dataset_id
                   for record in self.all_open_passes())

    def _end_epoch(self, source: str, loader: str | None) -> None:
        epoch = self._epoch
        self._epoch += 1
        self._last_epoch_end_steps = self._steps
        self._emit("epoch_end", {"epoch": epoch, "epochs_completed": self._epoch, "steps": self._steps,
                                 "source": source, "loader": loader})
