"""Evaluation cadence: epochs that trained without any evaluation after them.

**Epochs.** Loops with a training DataLoader: epoch ``e`` runs from the start of the training
loader's pass ``e`` to the start of its pass ``e+1`` (or the end of the run), so its boundary ``B_e``
is ``run.loop.steps`` when the next training pass starts. Passes are counted from their start, not their
end, because frameworks that prefetch or know the length (Lightning) never exhaust the iterator and
its end is seen late; whatever happens between two training passes (validation) belongs to the
epoch before. The training loader is the first one whose pass trained (optimizer steps). Loops that
call ``watchdog.mark_epoch()`` use the ``epoch_end`` events instead: ``B_e`` is ``run.loop.steps`` at mark
``e`` (a first mark right after a loader-ended epoch confirms that epoch). Epochs
are numbered among the windows that trained (had optimizer steps); a pass with no step (peeking at
one batch) is no epoch.

**Evaluation activity** is (a) a DataLoader pass labelled ``eval`` (no optimizer step, no backward,
forwards under ``no_grad`` or in eval mode), or (b) forwards of a trained model (one whose parameters
an optimizer steps) under ``no_grad`` / ``inference_mode`` while no DataLoader pass is open, as
nanoGPT's ``estimate_loss()`` does, or (c) forwards of a trained model under ``no_grad`` *and* in
eval mode inside a DataLoader pass (validation on in-memory tensors in the middle of a training
epoch). Forwards of models no optimizer steps (a frozen teacher) and ``no_grad`` forwards in train
mode inside a training pass (pseudo-labels, FixMatch-style) are not evaluation. Each is noted with
the step count ``s`` at which it ran and belongs to the epoch whose steps it follows: the epoch with
``B_e-1 < s <= B_e`` (after an epoch's training, mid-epoch, or at the start of the next epoch before
its first step). Evaluation before the first optimizer step (``s = 0``, a baseline) belongs to no
epoch.

**Windows close live**: epoch ``e``'s window closes at the first optimizer step after ``B_e`` (a
step alarm), so a missing evaluation is reported the moment training of the next epoch starts, not
only at the end. The last window closes at the end of the run, if the run completed (a run that
raised, was interrupted or stopped never reached that evaluation; the same goes for step-based runs).

**Verdicts**: each closed window is one ``eval_window`` event: the epoch, its steps, whether it was
evaluated and by what (the evaluation passes' loaders, the models evaluated by forwards). The views
chart these verdicts and the findings; they never judge a window themselves.

**Cadence** (``watch(eval_every=k)``, default 1): a run of ``k`` or more consecutive trained epochs
without evaluation is missing its evaluation. ``eval_every=2`` with validation after every other
epoch is clean. A run that trained a single epoch has no cadence to keep: it is judged by steps.
When a framework's trainer runs the loop (a ``framework_trainer`` event: Lightning's
``check_val_every_n_epoch``, the Hugging Face ``eval_strategy``/``eval_steps``, translated into
epochs by ``integrations/frameworks.py``), the cadence expected is the larger of ``eval_every`` and
the trainer's own: what the user configured there is the user's choice, stated once.
The rule is :class:`CadenceRule` (epochs) and :func:`step_based_finding` (loops without epochs), and
the finding's words are :func:`missing_epochs_finding`: this check feeds them one process's epochs;
``crossrank.py`` feeds them the union of a ``torchrun`` job's ranks (an epoch counts as evaluated
when any rank evaluated it).

**One rank of several** (``torchrun``): a rank alone cannot know whether another rank evaluated the
epoch it skipped (rank 0 evaluating while the others wait is correct). Its own report keeps what it
saw, as ``info`` (so ``strict`` never stops one rank of a correct job), and at the end it logs an
``eval_summary`` (its evaluation steps, its steps, the held-out data it saw) for the merge, which
judges the job's cadence on every rank's verdicts together.

Codes:

- ``eval/missing-epochs`` — epochs trained without evaluation, one finding summarising the ranges.
  When no evaluation ran at all, the rule tells "forgot to evaluate" from "nothing to evaluate": a
  held-out split or an evaluation loader that exists near the loop but is never iterated is the bug
  (warning); no held-out data at all (a GAN) is info.
  Warning; **error** when the only evaluation ran after training (the seed's loop); info when only
  the last ``eval_every`` epochs lack it and every earlier epoch was evaluated on time (validation
  at the start of each epoch: the final weights were never evaluated).
- ``eval/only-at-end`` (error) — loops without epochs (step-based, like nanoGPT), or with a single
  one, that trained
  ``STEP_RUN_MIN_STEPS`` steps or more and evaluated only after the last optimizer step.
- ``eval/never`` (warning) — loops without epochs that trained that long with no evaluation during
  or after training. A step-based run with any evaluation between its first and last optimizer
  step is never flagged: its cadence (every N steps) is the user's choice.
"""

from __future__ import annotations

import bisect
from typing import Any

from ..core.check import Check
from ..core.frames import user_frames
from .common import TrainedModels, at_step, held_out_data
from .rule import (EVIDENCE_CAP, MIN_TRAINED_EPOCHS, CadenceRule, EvaluationFacts, missing_epochs_finding,
                   step_based_finding)

class EvalPoints:
    """Every evaluation so far, by step, kept sorted as it arrives (no copy or sort per window).

    Evaluation passes are added as they end. The ``no_grad`` forwards of trained models are read
    from their ``ModelInfo.eval_steps`` (appended by the training probe) at each :meth:`refresh`:
    only the entries not merged yet. Steps only grow, so a new point is an append. A model's last
    entry is read live, never merged (the probe overwrites it once its list is full); and when the
    set of trained models changes (an optimizer found later, a new model), the index is rebuilt
    once. What evaluated is named when a window is judged (a model's label can gain its name later).
    """

    def __init__(self, trained: TrainedModels):
        self.trained = trained
        self.passes: list[tuple[int, str]] = []  # (step, label) of each evaluation pass
        self.steps: list[int] = []  # sorted
        self.whats: list[Any] = []  # beside `steps`: a pass's label, or the ModelInfo that evaluated
        self._models: list[Any] = []  # the trained models' ModelInfos merged, in order
        self._merged: dict[int, int] = {}  # id(ModelInfo) -> its eval_steps entries merged
        self._live: list[tuple[int, Any]] = []  # (step, ModelInfo): each model's last entry, read live

    def add_pass(self, step: int, loader: str) -> None:
        label = f"evaluation pass over {loader}"
        self.passes.append((step, label))
        self._insert(step, label)

    def _insert(self, step: int, what: Any) -> None:
        steps = self.steps
        if not steps or step >= steps[-1]:
            steps.append(step)
            self.whats.append(what)
        else:
            i = bisect.bisect_right(steps, step)
            steps.insert(i, step)
            self.whats.insert(i, what)

    def refresh(self) -> None:
        """Merge what the trained models evaluated since the last call."""
        infos = self.trained.infos(alive=False)
        if len(infos) != len(self._models) or any(a is not b for a, b in zip(infos, self._models)):
            self._rebuild(infos)
        live = []
        for info in infos:
            eval_steps = info.eval_steps
            fixed = len(eval_steps) - 1
            done = self._merged.get(id(info), 0)
            if fixed > done:
                for step in eval_steps[done:fixed]:
                    self._insert(step, info)
                self._merged[id(info)] = fixed
            if eval_steps:
                live.append((eval_steps[-1], info))
        self._live = live

    def _rebuild(self, infos: list[Any]) -> None:
        points: list[tuple[int, Any]] = list(self.passes)
        self._merged = {}
        for info in infos:
            fixed = max(0, len(info.eval_steps) - 1)
            points.extend((step, info) for step in info.eval_steps[:fixed])
            self._merged[id(info)] = fixed
        points.sort(key=lambda point: point[0])
        self.steps = [step for step, _ in points]
        self.whats = [what for _, what in points]
        self._models = list(infos)

    @staticmethod
    def _label(what: Any) -> str:
        if isinstance(what, str):
            return what
        return f"no_grad forwards of {getattr(what, 'label', None) or 'the model'}"

    def between(self, start: int, end: int) -> set[str] | None:
        """What evaluated at steps ``start < s <= end`` (None when nothing did). Call
        :meth:`refresh` first."""
        lo = bisect.bisect_right(self.steps, start)
        hi = bisect.bisect_right(self.steps, end)
        found = {self._label(what) for what in self.whats[lo:hi]}
        for step, info in self._live:
            if start < step <= end:
                found.add(self._label(info))
        return found or None

    def first_after(self, step: int) -> int | None:
        """The first evaluation step after ``step`` (None if none)."""
        i = bisect.bisect_right(self.steps, step)
        candidates = [self.steps[i]] if i < len(self.steps) else []
        candidates += [s for s, _ in self._live if s > step]
        return min(candidates) if candidates else None

    def first_distinct(self, limit: int) -> list[int]:
        """The first ``limit`` distinct evaluation steps, sorted."""
        seen: set[int] = {s for s, _ in self._live}
        wanted = limit + len(seen)
        for step in self.steps:
            if len(seen) >= wanted:
                break
            seen.add(step)
        return sorted(seen)[:limit]

    def sources(self) -> list[tuple[int, str]]:
        """``(step, what evaluated)`` of every evaluation, by step (a copy: for the run's end)."""
        self.refresh()
        points = [(step, self._label(what)) for step, what in zip(self.steps, self.whats)]
        points += [(step, self._label(info)) for step, info in self._live]
        points.sort(key=lambda point: point[0])
        return points


class EvalCadenceCheck(Check):
    name = "eval-cadence"

    def __init__(self, run: Any):
        super().__init__(run)
        self.held_out: dict[str, None] = {}  # names of held-out data seen near the loop (ordered)
        self.trained = TrainedModels(run)
        # run.loop.steps at each pass start, per stream: the loaders over one dataset (a DataLoader
        # rebuilt each epoch over the same dataset is one stream, as the loop's epoch rule has it)
        self.pass_starts: dict[Any, list[int]] = {}
        self.train_stream: Any = None  # the stream of the first loader whose pass trained
        self.epoch_end_steps: list[int] = []  # run.loop.steps at each epoch_end (the boundaries once epochs are marked)
        self.points = EvalPoints(self.trained)  # every evaluation so far, by step
        self.judged = 0  # windows closed so far
        self.epoch_steps: list[int] = []  # B_e of each trained epoch judged so far
        self.rule = CadenceRule(run.options.eval_every)  # the epochs judged, and what is missing
        self.final_epochs: int | None = None
        self.framework: dict[str, Any] = {}  # the trainer's evaluation settings (framework_trainer), if any
        self.framework_held_out: dict[str, Any] = {}  # held-out data the trainer holds, by name

    @property
    def every(self) -> int:
        """The cadence judged: ``eval_every``, or the trainer's own setting when it is larger."""
        return self.rule.every

    def _cadence_source(self) -> str:
        """``Lightning's check_val_every_n_epoch=2`` when the cadence judged is the trainer's, else ""."""
        setting = self.framework.get("eval_setting")
        if setting and (self.framework.get("eval_every") or 1) > self.run.options.eval_every:
            return f"{self.framework.get('display')}'s {setting}"
        return ""

    def _not_evaluating(self) -> str:
        """``the Hugging Face Trainer is set to eval_strategy="no"`` when the trainer is set not to evaluate."""
        if self.framework and not self.framework.get("evaluates", True):
            return f"{self.framework.get('display')} is set to {self.framework.get('eval_setting')}"
        return ""

    def _held_out_data(self) -> list[str]:
        """Held-out data near the loop and in the trainer (looked for while the training frames are there)."""
        return held_out_data(self.run, user_frames(8), self.framework_held_out)

    # -- events ---------------------------------------------------------------------------------------
    @staticmethod
    def _stream(event: Any) -> Any:
        """The pass's stream: its loader's dataset (``LoaderInfo.dataset_id``), else the loader."""
        record = (event.refs or {}).get("record")
        dataset_id = getattr(getattr(record, "loader", None), "dataset_id", None)
        return ("dataset", dataset_id) if dataset_id is not None else ("loader", str(event.data.get("loader_id")))

    def on_loader_pass_start(self, event: Any) -> None:
        stream = self._stream(event)
        starts = self.pass_starts.setdefault(stream, [])
        starts.append(int(event.data.get("step", self.run.loop.steps)))
        if stream == self.train_stream and len(starts) > 1:
            at_step(self, starts[-1] + 1, self._next_epoch_started)  # the previous epoch is over

    def on_loader_pass_end(self, event: Any) -> None:
        data = event.data
        role = data.get("role")
        if role == "eval" and data.get("batches", 0) > 0:
            self.points.add_pass(int(data.get("step", self.run.loop.steps)), str(data.get("loader")))
        elif role == "train" and self.train_stream is None:
            self.train_stream = self._stream(event)
            self._close_windows(self.run.loop.steps)  # known late (Lightning): earlier epochs may be over

    def on_framework_trainer(self, event: Any) -> None:
        self.framework = dict(event.data)
        self.framework_held_out = dict((event.refs or {}).get("held_out") or {})
        self.rule.every = max(self.run.options.eval_every, self.framework.get("eval_every") or 1)

    def on_epoch_end(self, event: Any) -> None:
        steps = int(event.data["steps"])
        self.epoch_end_steps.append(steps)
        if self.run.loop.epoch_source == "mark":
            self._close_windows(self.run.loop.steps)
            at_step(self, steps + 1, self._next_epoch_started)

    def _next_epoch_started(self) -> None:
        self._close_windows(self.run.loop.steps)

    def finish(self) -> None:
        # A run cut short (exception, Ctrl-C, SIGTERM, stopped by watchdog) never reached the evaluation
        # of its last epoch, or the next periodic one: only windows closed by a later step are judged.
        completed = self.run.status == "ok"
        self._close_windows(self.run.loop.steps, final=completed)
        self.final_epochs = len(self.epoch_steps)
        if self.run.rank_info is not None:
            self._log_summary(completed)
        if self.rule.epochs >= MIN_TRAINED_EPOCHS:
            if self.rule.missing:
                self._report_missing(final=True)
        elif self.run.loop.steps > 0 and completed:
            self._judge_step_based()  # no epochs, or a single one: judged by optimizer steps

    def _log_summary(self, completed: bool) -> None:
        """On one rank of several: what the merge needs to judge the job's cadence on every rank's
        evaluations together (``crossrank.py``), beside this rank's ``eval_window`` verdicts."""
        points = self.points
        points.refresh()
        first_eval = points.first_after(0)
        if first_eval is None:  # is there anything to evaluate on? (looked for while the training frames are there)
            self.held_out.update(dict.fromkeys(self._held_out_data()))
        self.run.emit("eval_summary", {
            "steps": self.run.loop.steps, "completed": completed, "epochs": self.rule.epochs,
            "eval_steps": points.first_distinct(EVIDENCE_CAP), "first_eval": first_eval,
            "held_out": list(self.held_out)[:20], "eval_every": self.every,
            "epoch_source": self.run.loop.epoch_source,
            "where": getattr(self.run.loop.primary_train_loader, "where", None)})

    # -- epochs and evaluation points ------------------------------------------------------------------
    def _boundary_count(self, final: bool) -> int:
        """How many epoch windows are known so far (with ``final``, the open last one ends now)."""
        if self.run.loop.epoch_source == "mark":
            return len(self.epoch_end_steps)  # the session keeps loader epochs and marks consistent
        if self.train_stream is None:
            return 0
        starts = len(self.pass_starts.get(self.train_stream, ()))
        return max(0, starts - 1) + (1 if final else 0)

    def _boundary(self, index: int, final: bool) -> int:
        """B_e of window ``index`` (< ``_boundary_count(final)``), read in place: no copy per call."""
        if self.run.loop.epoch_source == "mark":
            return self.epoch_end_steps[index]
        starts = self.pass_starts.get(self.train_stream, [])
        return starts[index + 1] if index + 1 < len(starts) else self.run.loop.steps

    def boundaries(self, final: bool) -> list[int]:
        """B_e of every epoch window known so far (with ``final``, the open last one ends now)."""
        return [self._boundary(i, final) for i in range(self._boundary_count(final))]

    def eval_points(self) -> list[int]:
        return [step for step, _ in self.eval_sources()]

    def eval_sources(self) -> list[tuple[int, str]]:
        """``(step, what evaluated)`` of every evaluation so far, by step: an evaluation pass names its
        loader, forwards of a trained model under ``no_grad`` name the model."""
        return self.points.sources()

    # -- epoch windows -------------------------------------------------------------------------------
    def _close_windows(self, now: int, final: bool = False) -> None:
        count = self._boundary_count(final)
        if self.judged >= count:
            return
        points = self.points
        points.refresh()
        while self.judged < count:
            end = self._boundary(self.judged, final)
            if not final and now <= end:
                break
            start = self._boundary(self.judged - 1, final) if self.judged > 0 else 0
            self.judged += 1
            if end <= start:
                continue  # no optimizer step in this window: nothing trained, no epoch
            epoch = len(self.epoch_steps)
            self.epoch_steps.append(end)
            by = points.between(start, end)
            evaluated = by is not None
            self.run.emit("eval_window", {
                "epoch": epoch, "first_step": start + 1, "last_step": end, "evaluated": evaluated,
                "by": sorted(by or ()),
                "eval_every": self.every, "epoch_source": self.run.loop.epoch_source})
            if self.rule.add(epoch, evaluated) and not final:
                self._report_missing(final=False)

    def _report_missing(self, final: bool) -> None:
        run = self.run
        points = self.points
        points.refresh()
        first_eval = points.first_after(0)  # the first evaluation after step 0, if any
        if first_eval is None:  # is there anything to evaluate on? (looked for while the training frames are there)
            self.held_out.update(dict.fromkeys(self._held_out_data()))
        facts = EvaluationFacts(
            steps=run.loop.steps, first_eval=first_eval, eval_steps=points.first_distinct(EVIDENCE_CAP),
            held_out=list(self.held_out), epoch_source=run.loop.epoch_source, epoch_end_steps=self.epoch_steps,
            where=getattr(run.loop.primary_train_loader, "where", None),
            cadence_source=self._cadence_source(), not_evaluating=self._not_evaluating(),
            framework_fix=str(self.framework.get("eval_fix") or ""))
        rank = run.rank_info.rank if run.rank_info is not None else None
        self.report(missing_epochs_finding(self.rule, facts, final=final, rank_alone=rank))

    # -- loops without epochs ----------------------------------------------------------------------------
    def _judge_step_based(self) -> None:
        rank = self.run.rank_info.rank if self.run.rank_info is not None else None
        finding = step_based_finding(self.run.loop.steps, self.eval_points(), rank_alone=rank)
        if finding is not None:
            self.report(finding)
