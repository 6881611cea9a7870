"""Resumes that restore the weights but leave the optimizer fresh or restart the LR schedule.

After ``torch.load`` returns a checkpoint holding training state, the first step of each optimizer
is judged (event ``optimizer_step_after_load``):

* the checkpoint holds optimizer state for this optimizer (same number of parameter tensors) and
  ``optimizer.load_state_dict`` was never called on it → ``resume/optimizer-not-restored``;
* the checkpoint shows progress (epoch/step counters > 1) but holds no optimizer state at all, and
  the optimizer keeps per-parameter state → ``resume/optimizer-state-absent`` (warning);
* a scheduler attached to it was not restored and starts from its first epoch although the
  checkpoint is from a later epoch → ``resume/scheduler-restarted``, with the LR it should have;
* its LR differs from the LR the checkpoint was saved with → ``resume/lr-jump``;
* an enabled GradScaler not restored while the checkpoint holds scaler state →
  ``resume/scaler-not-restored`` (warning).

Only an optimizer whose first step comes after the load is judged (a resume); one that was already
training when a checkpoint was loaded (to evaluate old weights, say) keeps its own state and is
left alone. A correct resume (state loaded into every optimizer, scheduler and scaler) produces nothing.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
import weakref
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch

from ..core.findings import Finding
from ..core.frames import names_in_frames, user_frames
from .statetree import Inventory
from ..core.check import Check
from ..core.format import fmt_count, fmt_number as fmt
from .live import SeenObjects, live_scalers, live_schedulers

MAX_SIM_STEPS = 1_000_000


@dataclass
class Resume:
    """One optimizer's first step after a load, and what the loaded files hold (read by the judges)."""

    opt: Any
    nearby: list[Any]
    where: str | None
    lrs: list[float]
    label: str
    var: str
    files: str
    saved_opts: list[tuple[Any, Any]]
    saved_scheds: list[tuple[Any, Any]]
    saved_scalers: list[tuple[Any, Any]]
    epoch_counters: list[Any]
    step_counters: list[Any]
    restored: bool
    fresh: bool
    match: tuple[Any, Any] | None


@dataclass
class LoadRecord:
    label: str
    path: str | None
    inv: Inventory
    steps: int


def lr_at(scheduler: Any, epoch: int) -> list[float] | None:
    """The LRs `scheduler`'s schedule gives at `epoch` when started fresh; None when it cannot tell.

    Works on a copy bound to a stand-in optimizer: the real scheduler and optimizer are untouched.
    """
    try:
        groups = [{k: v for k, v in g.items() if k != "params"} for g in scheduler.optimizer.param_groups]
        base = list(getattr(scheduler, "base_lrs", []) or [])
        if len(base) != len(groups):
            return None
        for g, b in zip(groups, base):
            g["lr"] = b
            g["initial_lr"] = b
        sim = copy.copy(scheduler)
        sim.__dict__ = copy.deepcopy({k: v for k, v in scheduler.__dict__.items() if k != "optimizer"})
        sim.optimizer = SimpleNamespace(param_groups=groups)
        closed = getattr(sim, "_get_closed_form_lr", None)
        if closed is not None:
            sim.last_epoch = epoch
            return [float(x) for x in closed()]
        if epoch > MAX_SIM_STEPS:
            return None
        sim.last_epoch = 0
        sim._get_lr_called_within_step = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(epoch):
                sim.last_epoch += 1
                lrs = sim.get_lr()
                for g, lr in zip(groups, lrs):
                    g["lr"] = float(lr)
        return [float(g["lr"]) for g in groups]
    except Exception:  # noqa: BLE001 - only used to word a message
        return None


def source_expr(label: str, path: str) -> str:
    """Python that gets an entry back: `checkpoint['optimizer_states'][0]`, or `torch.load('optimizer.pt')`."""
    if path in ("", "<root>"):
        return f"torch.load('{label}')"
    out = "checkpoint"
    for token in path.split("."):
        name, _, rest = token.partition("[")
        if name:
            out += f"[{name!r}]"
        if rest:
            out += "[" + rest
    return out


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


class ResumeCheck(Check):
    """Resumes that leave optimizer / scheduler / scaler state unloaded, or make the LR jump."""

    name = "resume"

    def __init__(self, run: Any):
        super().__init__(run)
        self.seen = SeenObjects()  # schedulers and scalers the probe saw
        self.loads: list[LoadRecord] = []
        self.restored: dict[int, Any] = {}  # id -> weakref of objects whose load_state_dict ran
        self.judged: set[int] = set()
        self.loads_judged = False  # a step was judged against the current loads: the next load starts afresh

    # -- events ---------------------------------------------------------------------------------------
    def on_scheduler_seen(self, event: Any) -> None:
        self.seen.note(event)

    def on_scaler_seen(self, event: Any) -> None:
        self.seen.note(event)

    def on_checkpoint_loaded(self, event: Any) -> None:
        refs = event.refs or {}
        inv = refs.get("inventory")
        if inv is None:
            return
        path = event.data.get("path")
        label = os.path.basename(path) if path else f"<{event.data.get('target')}>"
        if self.loads_judged:
            self.loads, self.loads_judged = [], False
        self.loads.append(LoadRecord(label, path, inv, event.data.get("steps", 0)))
        self.judged.clear()

    def on_state_loaded(self, event: Any) -> None:
        target = (event.refs or {}).get("target")
        if target is not None:
            try:
                self.restored[id(target)] = weakref.ref(target)
            except TypeError:
                self.restored[id(target)] = lambda t=target: t

    def on_optimizer_step_after_load(self, event: Any) -> None:
        refs = event.refs or {}
        opt = refs.get("optimizer")
        if opt is None or not self.loads or id(opt) in self.judged:
            return
        self.judged.add(id(opt))
        self.loads_judged = True
        self._judge(opt, refs.get("nearby") or [], event.data.get("where"), event.data.get("lrs") or [])

    # -- judgement ------------------------------------------------------------------------------------
    def _was_restored(self, obj: Any) -> bool:
        ref = self.restored.get(id(obj))
        return ref is not None and ref() is obj

    def _label(self, opt: Any) -> tuple[str, str | None]:
        info = self.run.loop.optimizers.get(id(opt))
        if info is not None and info.ref() is opt:
            names = getattr(info, "names", None) or []
            return info.label, (names[-1] if names else None)
        return type(opt).__name__, None

    def _judge(self, opt: Any, nearby: list[Any], where: str | None, lrs: list[float]) -> None:
        resume = self._resume_of(opt, nearby, where, lrs)
        not_restored = self._judge_optimizer(resume)
        restarted = self._judge_schedulers(resume)
        if not restarted and not not_restored and (resume.fresh or resume.restored):
            self._judge_lr(resume)
        if resume.saved_scalers and resume.fresh:
            self._judge_scalers(resume)

    def _resume_of(self, opt: Any, nearby: list[Any], where: str | None, lrs: list[float]) -> "Resume":
        """What the loaded files hold, and what this optimizer's first step after the load looks like."""
        loads = self.loads
        counters = [c for l in loads for c in l.inv.counters]
        label, var = self._label(opt)
        n_params = sum(len(g["params"]) for g in opt.param_groups)
        info = self.run.loop.optimizers.get(id(opt))
        first_step = info.first_step if info is not None and info.ref() is opt else None
        saved_opts = [(l, o) for l in loads for o in l.inv.optimizers]
        match = next(((l, o) for l, o in saved_opts if o.n_params == n_params and o.n_with_state > 0), None)
        if match is None:
            match = next(((l, o) for l, o in saved_opts if o.n_params == n_params), None)
        return Resume(
            opt=opt, nearby=nearby, where=where, lrs=lrs, label=label, var=var or "optimizer",
            files=", ".join(dict.fromkeys(l.label for l in loads)),
            saved_opts=saved_opts,
            saved_scheds=[(l, s) for l in loads for s in l.inv.schedulers],
            saved_scalers=[(l, s) for l in loads for s in l.inv.scalers],
            epoch_counters=[c.value for c in counters if "epoch" in c.key.lower()],
            step_counters=[c.value for c in counters if "epoch" not in c.key.lower()],
            restored=self._was_restored(opt),
            # An optimizer that stepped before the load keeps this run's state: not a fresh start.
            fresh=first_step is None or first_step > min(l.steps for l in loads),
            match=match,
        )

    def _judge_optimizer(self, r: "Resume") -> bool:
        """``resume/optimizer-not-restored`` or ``resume/optimizer-state-absent``; True when not restored."""
        opt = r.opt
        if not r.fresh or r.restored:
            return False
        if r.match is not None and r.match[1].n_with_state > 0:
            l, o = r.match
            step_note = f", step {fmt(o.steps)}" if o.steps else ""
            saved_lrs = (r.saved_scheds[0][1].last_lrs if r.saved_scheds and r.saved_scheds[0][1].last_lrs else o.lrs)
            lr_note = ""
            if saved_lrs and r.lrs and len(saved_lrs) == len(r.lrs) and not all(_close(a, b) for a, b in zip(r.lrs, saved_lrs)):
                lr_note = f"; it also stepped at lr {fmt(r.lrs[0])} instead of the saved {fmt(saved_lrs[0])}"
            self.report(Finding(
                code="resume/optimizer-not-restored",
                severity="error",
                message=(f"{type(opt).__name__} state not restored: {o.kind} restart from zero. {l.label} holds "
                         f"{o.kind} for {o.n_with_state} parameter tensors ({fmt_count(o.numel)} values{step_note}) "
                         f"under '{o.path}', but {r.label} stepped without load_state_dict{lr_note}."),
                fix=f"Call {r.var}.load_state_dict({source_expr(l.label, o.path)}) after creating the optimizer, before training.",
                evidence={"file": l.label, "path": l.path, "entry": o.path, "optimizer": r.label,
                          "param_tensors_with_state": o.n_with_state, "saved_steps": o.steps,
                          "lrs": r.lrs, "saved_lrs": saved_lrs},
                where=r.where,
                key=r.label,
            ))
            return True
        if not r.saved_opts and opt.state and any(
                isinstance(v, torch.Tensor) and k != "step" for st in opt.state.values() for k, v in st.items()):
            progress = max(r.epoch_counters + r.step_counters, default=0)
            if progress > 1:
                counter = "epoch" if r.epoch_counters else "step"
                self.report(Finding(
                    code="resume/optimizer-state-absent",
                    severity="warning",
                    message=(f"Resuming from {r.files} ({counter} {fmt(progress)}) with a fresh {type(opt).__name__}: "
                             f"the checkpoint holds no optimizer state, so {r.label}'s moments restart from zero."),
                    fix="Save optimizer.state_dict() in the checkpoint and load it when resuming.",
                    evidence={"files": r.files, "counter": counter, "progress": progress, "optimizer": r.label},
                    where=r.where,
                    key=r.label,
                ))
        return False

    def _expected_schedule(self, r: "Resume", sched: Any) -> tuple[int | None, list[float] | None, str]:
        """The epoch (and LRs) a scheduler should resume at, and what says so."""
        if r.saved_scheds:
            l, s = r.saved_scheds[0]
            return s.last_epoch, s.last_lrs, f"the {s.path} state in {l.label}"
        if r.epoch_counters:
            expected = int(max(r.epoch_counters))
            return expected, lr_at(sched, expected), f"epoch {expected} in {r.files}, one scheduler step per epoch"
        if r.step_counters:
            expected = int(max(r.step_counters))
            return expected, lr_at(sched, expected), f"step {expected} in {r.files}, one scheduler step per optimizer step"
        return None, None, ""

    def _judge_schedulers(self, r: "Resume") -> bool:
        """``resume/scheduler-restarted`` for each scheduler of this optimizer; True when one restarted."""
        if not r.fresh:
            return False
        restarted = False
        for sched in live_schedulers(self.seen, r.nearby, {id(r.opt): r.opt}):
            if id(sched) in self.judged or self._was_restored(sched):
                continue
            self.judged.add(id(sched))
            le = int(getattr(sched, "last_epoch", 0) or 0)
            expected_epoch, expected_lrs, basis = self._expected_schedule(r, sched)
            if expected_epoch is None or le > 1 or expected_epoch <= le + 1:
                continue
            restarted = True
            found = names_in_frames({id(sched): sched}, user_frames(8)).get(id(sched))
            sched_var = found[-1] if found else "scheduler"
            cur = [float(x) for x in (getattr(sched, "_last_lr", None) or r.lrs)]
            should = f"; the LR should be {fmt(expected_lrs[0])}" if expected_lrs else ""
            self.report(Finding(
                code="resume/scheduler-restarted",
                severity="error",
                message=(f"{type(sched).__name__} restarts from epoch {le} (lr {fmt(cur[0] if cur else None)}) after "
                         f"loading {r.files}, which is from epoch {expected_epoch}{should} ({basis})."),
                fix=(f"Save {sched_var}.state_dict() in the checkpoint and call {sched_var}.load_state_dict("
                     f"checkpoint['scheduler']) when resuming" if not r.saved_scheds else
                     f"Call {sched_var}.load_state_dict({source_expr(r.saved_scheds[0][0].label, r.saved_scheds[0][1].path)}) "
                     f"when resuming") + ".",
                evidence={"files": r.files, "scheduler": type(sched).__name__, "last_epoch": le,
                          "expected_last_epoch": expected_epoch, "lrs": cur, "expected_lrs": expected_lrs,
                          "basis": basis},
                where=r.where,
                key=f"{type(sched).__name__}:{r.label}",
            ))
        return restarted

    def _judge_lr(self, r: "Resume") -> None:
        """``resume/lr-jump``: the first step's LR disagrees with every LR the loaded files were saved at.

        Each saved scheduler (or, without one, the matching optimizer state) says the LR to resume at;
        with several (two optimizers, two schedulers), one that agrees is enough.
        """
        lrs = r.lrs
        candidates = [(s.last_lrs, f"{l.label} ({s.path})") for l, s in r.saved_scheds
                      if s.last_lrs and len(s.last_lrs) == len(lrs)]
        if not candidates and r.match is not None and r.match[1].lrs and len(r.match[1].lrs) == len(lrs):
            candidates = [(r.match[1].lrs, f"{r.match[0].label} ({r.match[1].path})")]
        agrees = any(all(_close(a, b) for a, b in zip(lrs, c)) for c, _ in candidates)
        expected, source = candidates[0] if candidates and not agrees else (None, "")
        if expected and lrs:
            self.report(Finding(
                code="resume/lr-jump",
                severity="error",
                message=(f"The LR jumps at the resume: {r.label} stepped at lr {fmt(lrs[0])} right after loading "
                         f"{source}, which was saved at lr {fmt(expected[0])}."),
                fix="Restore the optimizer and the scheduler from the checkpoint (both load_state_dict calls), "
                    "and create the scheduler before loading its state.",
                evidence={"optimizer": r.label, "lrs": lrs, "expected_lrs": expected, "source": source},
                where=r.where,
                key=r.label,
            ))

    def _judge_scalers(self, r: "Resume") -> None:
        """``resume/scaler-not-restored`` for each enabled GradScaler near the step that was not loaded."""
        for scaler in live_scalers(self.seen, r.nearby):
            if id(scaler) in self.judged or self._was_restored(scaler) or not scaler.is_enabled():
                continue
            self.judged.add(id(scaler))
            l, s = r.saved_scalers[0]
            self.report(Finding(
                code="resume/scaler-not-restored",
                severity="warning",
                message=(f"GradScaler not restored: it restarts at scale {fmt(getattr(scaler, '_init_scale', None))} "
                         f"although {l.label} holds scale {fmt(s.scale)}; the first steps after the resume may be "
                         f"skipped as overflows."),
                fix=f"Call scaler.load_state_dict({source_expr(l.label, s.path)}) when resuming.",
                evidence={"file": l.label, "saved_scale": s.scale},
                where=r.where,
                key="scaler",
            ))
