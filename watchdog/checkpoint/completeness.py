"""Checkpoints that leave live training state out: the optimizer's, the LR scheduler's, the grad scaler's.

At each ``torch.save`` seen while watching, the saved object is classified structurally
(``statetree.inventory``) and compared with what is live at that moment (``live``): every optimizer
that has stepped (with per-parameter state), every LR scheduler attached to one (that has moved), an
enabled grad scaler. Saves into one directory (or into memory) with no optimizer step between them
form one checkpoint (HF Trainer writes model, ``optimizer.pt``, ``scheduler.pt`` side by side); it is
judged when the next checkpoint starts, at an epoch end, or at run end. What is missing becomes a
finding with its consequence in numbers and the one-line fix. Saves that hold model weights only (no
counter, no optimizer state) are exports, not checkpoints: they are reported once, at run end, only
when no save of the run held the optimizer's state. A whole module pickled while an optimizer trains
is reported at once.

Whether a file reads back as saved is the integrity check's (``integrity``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..core.check import Check
from ..core.findings import Finding
from ..core.format import fmt_count, fmt_number as fmt
from ..core.frames import names_in_frames, user_frames
from .live import (LiveOptimizer, LiveScaler, LiveScheduler, SaveRecord, describe_live_optimizer, SeenObjects, live_scalers,
                   live_schedulers, name_of, scaler_scale)


@dataclass
class SaveGroup:
    key: str
    steps: int
    saves: list[SaveRecord] = field(default_factory=list)
    optimizers: list[LiveOptimizer] = field(default_factory=list)
    schedulers: list[LiveScheduler] = field(default_factory=list)
    scalers: list[LiveScaler] = field(default_factory=list)

    @property
    def labels(self) -> str:
        return ", ".join(s.label for s in self.saves)


class CheckpointCompletenessCheck(Check):
    """Checkpoints missing live optimizer / scheduler / grad-scaler state, whole-module pickles, and runs
    whose saves are all weights-only exports."""

    name = "checkpoint-completeness"

    def __init__(self, run: Any):
        super().__init__(run)
        self.seen = SeenObjects()  # schedulers and scalers the probe saw
        self.group: SaveGroup | None = None
        self.weight_exports: list[str] = []
        self.optimizer_state_saved: set[str] = set()  # labels of live optimizers whose state was saved
        self.live_at_exports: list[LiveOptimizer] = []
        self.counts: dict[tuple[str, str], int] = {}

    # -- events ---------------------------------------------------------------------------------------
    def on_scheduler_seen(self, event: Any) -> None:
        self.seen.note(event)

    def on_scaler_seen(self, event: Any) -> None:
        self.seen.note(event)

    def on_checkpoint_saved(self, event: Any) -> None:
        data, refs = event.data, event.refs or {}
        record = SaveRecord.from_event(event)
        key = data.get("dir") or (data.get("path") or f"<{data.get('target')}>")
        if self.group is not None and (self.group.key != key or self.group.steps != self.run.loop.steps):
            self._close_group()
        if record.inv.whole_modules:
            self._whole_module(record)
        if record.holds_training_state:
            if self.group is None:
                self.group = self._open_group(key, refs.get("nearby") or [])
            self.group.saves.append(record)

    def on_epoch_end(self, event: Any) -> None:
        self._close_group()

    def finish(self) -> None:
        self._close_group()
        self._weights_only_exports()

    # -- the live state a checkpoint is judged against ------------------------------------------------
    def _open_group(self, key: str, nearby: list[Any]) -> SaveGroup:
        group = SaveGroup(key, self.run.loop.steps)
        live: dict[int, Any] = {}
        for info in self.run.loop.optimizers_training_now():  # not a finished fit's optimizer
            opt = info.ref()
            if opt is None:
                continue
            live[id(opt)] = opt
            group.optimizers.append(describe_live_optimizer(info, opt))
        labels = {id(info.ref()): info.label for info in self.run.loop.optimizers.values() if info.ref() is not None}
        frames = user_frames(8)
        sched_objs = live_schedulers(self.seen, nearby, live)
        scaler_objs = live_scalers(self.seen, nearby)
        names = names_in_frames({id(o): o for o in sched_objs + scaler_objs}, frames)
        for s in sched_objs:
            group.schedulers.append(LiveScheduler(
                type_name=type(s).__name__,
                name=name_of(s, names),
                last_epoch=int(getattr(s, "last_epoch", 0) or 0),
                lrs=[float(x) for x in (getattr(s, "_last_lr", None) or [])],
                base_lrs=[float(x) for x in (getattr(s, "base_lrs", None) or [])],
                optimizer_label=labels.get(id(s.optimizer), type(s.optimizer).__name__),
            ))
        if group.optimizers:
            for sc in scaler_objs:
                scale = scaler_scale(sc) if sc.is_enabled() else None
                if scale is not None:
                    group.scalers.append(LiveScaler(name_of(sc, names), scale, getattr(sc, "_init_scale", None)))
        return group

    # -- what a checkpoint leaves out -----------------------------------------------------------------
    def _close_group(self) -> None:
        group, self.group = self.group, None
        if group is None or not group.saves:
            return
        saved_opts = [o for s in group.saves for o in s.inv.optimizers]
        saved_scheds = [x for s in group.saves for x in s.inv.schedulers]
        saved_scalers = [x for s in group.saves for x in s.inv.scalers]
        counters = [c for s in group.saves for c in s.inv.counters]
        training_checkpoint = bool(saved_opts or saved_scheds or saved_scalers or counters)
        if not training_checkpoint:
            if any(s.inv.weights and not s.inv.whole_modules for s in group.saves):
                self.weight_exports.append(group.labels)
                self.live_at_exports = group.optimizers or self.live_at_exports
            return
        where = next((s.where for s in group.saves if s.where), None)
        remaining = list(saved_opts)
        for live in group.optimizers:
            match = next((o for o in remaining if o.n_params == live.n_params and o.n_with_state > 0), None)
            if match is None:
                match = next((o for o in remaining if o.n_params == live.n_params), None)
                if match is not None and (match.n_with_state > 0 or live.n_tensors == 0):
                    remaining.remove(match)
                    self.optimizer_state_saved.add(live.label)
                    continue
            else:
                remaining.remove(match)
                self.optimizer_state_saved.add(live.label)
                continue
            if live.n_tensors == 0 and all(i is None or i == lr for i, lr in zip(live.initial_lrs, live.lrs)):
                continue  # nothing to lose (plain SGD at a constant LR)
            self._missing_optimizer(group, live, where, saved_opts)
        remaining_scheds = list(saved_scheds)
        for sched in group.schedulers:
            if sched.last_epoch <= 0:
                continue
            match = next((x for x in remaining_scheds if x.last_epoch == sched.last_epoch), None)
            match = match or (remaining_scheds[0] if remaining_scheds else None)
            if match is not None:
                remaining_scheds.remove(match)
                continue
            self._missing_scheduler(group, sched, where)
        if group.scalers and not saved_scalers:
            for scaler in group.scalers:
                self._missing_scaler(group, scaler, where)

    def _count(self, code: str, key: str) -> int:
        self.counts[(code, key)] = self.counts.get((code, key), 0) + 1
        return self.counts[(code, key)]

    def _missing_optimizer(self, group: SaveGroup, live: LiveOptimizer, where: str | None, saved: list) -> None:
        code = "checkpoint/missing-optimizer-state"
        n = self._count(code, live.label)
        what = f"{live.kind} for {live.n_with_state} parameter tensors ({fmt_count(live.numel)} values)"
        if live.n_tensors == 0:
            what = f"its param_groups (lr {', '.join(fmt(x) for x in live.lrs)})"
        lr_note = ""
        if live.lrs and live.initial_lrs and live.initial_lrs[0] is not None and live.initial_lrs[0] != live.lrs[0]:
            lr_note = f"; LR would restart at {fmt(live.initial_lrs[0])} instead of {fmt(live.lrs[0])}"
        present = f" (it holds state for {len(saved)} other optimizer(s))" if saved else ""
        var = live.name or "optimizer"
        self.report(Finding(
            code=code,
            severity="error",
            message=(f"Checkpoint {group.labels} leaves out {live.label}'s state{present}: {what} lost, "
                     f"a resume restarts them from zero{lr_note}"
                     + (f" ({n} checkpoints so far)" if n > 1 else "") + "."),
            fix=f"Save it too: add 'optimizer': {var}.state_dict() to the saved dict, and call "
                f"{var}.load_state_dict(ckpt['optimizer']) when resuming.",
            evidence={"checkpoint": group.labels, "directory": group.key, "optimizer": live.label,
                      "state_kind": live.kind, "param_tensors_with_state": live.n_with_state,
                      "state_values": live.numel, "optimizer_steps": live.steps, "lrs": live.lrs,
                      "initial_lrs": live.initial_lrs, "checkpoints_affected": n,
                      "saved_parts": [s.inv.summary() for s in group.saves][:4]},
            where=where,
            key=live.label,
        ))

    def _missing_scheduler(self, group: SaveGroup, sched: LiveScheduler, where: str | None) -> None:
        code = "checkpoint/missing-scheduler-state"
        key = f"{sched.type_name}:{sched.optimizer_label}"
        n = self._count(code, key)
        var = sched.name or "scheduler"
        cur = sched.lrs[0] if sched.lrs else None
        base = sched.base_lrs[0] if sched.base_lrs else None
        if sched.type_name == "ReduceLROnPlateau":
            consequence = "its plateau counters are lost"
        else:
            consequence = f"a resume restarts the schedule at epoch 0, LR {fmt(base)} instead of {fmt(cur)}"
        self.report(Finding(
            code=code,
            severity="error",
            message=(f"Checkpoint {group.labels} leaves out the {sched.type_name} state (last_epoch "
                     f"{sched.last_epoch}, lr {fmt(cur)}) of {sched.optimizer_label}: {consequence}"
                     + (f" ({n} checkpoints so far)" if n > 1 else "") + "."),
            fix=f"Save it too: add 'scheduler': {var}.state_dict() to the saved dict, and call "
                f"{var}.load_state_dict(ckpt['scheduler']) when resuming.",
            evidence={"checkpoint": group.labels, "directory": group.key, "scheduler": sched.type_name,
                      "last_epoch": sched.last_epoch, "lrs": sched.lrs, "base_lrs": sched.base_lrs,
                      "optimizer": sched.optimizer_label, "checkpoints_affected": n},
            where=where,
            key=key,
        ))

    def _missing_scaler(self, group: SaveGroup, scaler: LiveScaler, where: str | None) -> None:
        code = "checkpoint/missing-scaler-state"
        n = self._count(code, "scaler")
        var = scaler.name or "scaler"
        init = scaler.init_scale
        note = ""
        if init and scaler.scale and scaler.scale < init:
            note = f" (about {round(math.log2(init / scaler.scale))} skipped overflow steps to back off again)"
        self.report(Finding(
            code=code,
            severity="warning",
            message=(f"Checkpoint {group.labels} leaves out the GradScaler state: scale {fmt(scaler.scale)} lost, "
                     f"a resume restarts at {fmt(init)}{note}" + (f" ({n} checkpoints so far)" if n > 1 else "") + "."),
            fix=f"Save it too: add 'scaler': {var}.state_dict() to the saved dict, and call "
                f"{var}.load_state_dict(ckpt['scaler']) when resuming.",
            evidence={"checkpoint": group.labels, "scale": scaler.scale, "init_scale": init, "checkpoints_affected": n},
            where=where,
            key="scaler",
        ))

    def _whole_module(self, record: SaveRecord) -> None:
        live = [info for info in self.run.loop.optimizers.values() if info.ref() is not None]
        if not live:
            return
        module = record.inv.whole_modules[0]
        names = ", ".join(info.label for info in live)
        self.report(Finding(
            code="checkpoint/whole-module-pickle",
            severity="warning",
            message=(f"torch.save pickled the whole {module.module_type} module into {record.label} while {names} "
                     f"is training: the file holds weights ({fmt_count(module.numel)} values) but no optimizer "
                     f"state, needs full unpickling (weights_only=False) and the class's source to load, and "
                     f"breaks when the code moves."),
            fix="Save state dicts instead: torch.save({'model': model.state_dict(), 'optimizer': "
                "optimizer.state_dict(), 'epoch': epoch}, path).",
            evidence={"file": record.label, "path": record.path, "module_type": module.module_type,
                      "tensors": module.n_tensors, "values": module.numel, "optimizers": names},
            where=record.where,
            key=record.label,
        ))

    def _weights_only_exports(self) -> None:
        if not self.weight_exports or not self.live_at_exports:
            return
        lost = [o for o in self.live_at_exports if o.label not in self.optimizer_state_saved and o.n_tensors > 0]
        if not lost:
            return
        o = lost[0]
        shown = ", ".join(self.weight_exports[:3]) + (" ..." if len(self.weight_exports) > 3 else "")
        self.report(Finding(
            code="checkpoint/weights-only",
            severity="info",  # exports and best-model files are weights only, rightly: say it, don't warn
            message=(f"No save in this run can resume training: {len(self.weight_exports)} save(s) held model "
                     f"weights only ({shown}) and none held {o.label}'s state. That is right for exports and "
                     f"best-model files; a resume from them would restart {o.kind} for {o.n_with_state} parameter "
                     f"tensors from zero and the LR schedule from its start."),
            fix=f"If the run must be resumable, also write a checkpoint: torch.save({{'model': model.state_dict(), "
                f"'optimizer': {o.name or 'optimizer'}.state_dict(), 'epoch': epoch}}, path).",
            evidence={"saves": self.weight_exports[:20], "optimizers": [x.label for x in lost]},
            key="weights-only",
        ))

