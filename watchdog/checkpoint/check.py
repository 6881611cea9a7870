"""Checkpoints that leave live training state out, or that do not read back equal.

At each ``torch.save`` seen while watching, the saved object is classified structurally
(``statetree.inventory``) and compared with what is live at that moment: every optimizer that has
stepped (with per-parameter state), every LR scheduler attached to one (that has moved), an enabled
grad scaler. Saves into one directory (or into memory) with no optimizer step between them form one
checkpoint (HF Trainer writes model, ``optimizer.pt``, ``scheduler.pt`` side by side); it is judged
when the next checkpoint starts, at an epoch end, or at run end. What is missing becomes a finding
with its consequence in numbers and the one-line fix. Saves that hold model weights only (no
counter, no optimizer state) are exports, not checkpoints: they are reported once, at run end, only
when no save of the run held the optimizer's state.

Round trip: per ``checkpoint_verify`` (``first``: the first save of each layout; ``every``; ``off``)
the written bytes are read back with ``weights_only=True`` right after the save, before training
continues, and compared bit for bit with the object that was saved. A file that needs full
unpickling is reported as unverifiable, with why. A verified file that later changes on disk is
caught when it is loaded again (or at run end); a file that was only stat-ed (not read back) and is
rewritten by something else before this run loads it is a warning.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.findings import Finding
from ..core.format import fmt_count, fmt_number as fmt
from ..core.frames import names_in_frames, user_frames
from .roundtrip import Unverifiable, compare, crc_changes, leaf_crcs, read_back
from .statetree import Inventory, inventory, optimizer_kind
from ..core.check import Check


@dataclass
class LiveOptimizer:
    label: str
    name: str | None
    type_name: str
    n_params: int
    n_with_state: int
    n_tensors: int
    numel: int
    kind: str
    lrs: list[float]
    initial_lrs: list[float | None]
    steps: int


@dataclass
class LiveScheduler:
    type_name: str
    name: str | None
    last_epoch: int
    lrs: list[float]
    base_lrs: list[float]
    optimizer_label: str


@dataclass
class LiveScaler:
    name: str | None
    scale: float | None
    init_scale: float | None


@dataclass
class SaveRecord:
    label: str
    path: str | None
    inv: Inventory
    where: str | None


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


@dataclass
class FileRecord:
    stat: tuple[int, int]
    crcs: dict[str, str]
    steps: int
    label: str


MAX_READBACK_FRACTION = 0.4  # read a checkpoint back only when it fits in this share of free memory


def _available_memory() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001
        return None


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def _name_of(obj: Any, frames_names: dict[int, list[str]]) -> str | None:
    names = frames_names.get(id(obj))
    return names[-1] if names else None


def live_schedulers(run: Any, nearby: list[Any], optimizers: dict[int, Any]) -> list[Any]:
    """LR schedulers attached to the given optimizers (by id), children of chained ones excluded."""
    found: dict[int, Any] = {}
    for ref in list(getattr(run, "schedulers", {}).values()):
        s = ref()
        if s is not None:
            found[id(s)] = s
    for s in nearby:
        if isinstance(s, torch.optim.lr_scheduler.LRScheduler):
            found[id(s)] = s
    children: set[int] = set()
    for s in found.values():
        for child in getattr(s, "_schedulers", None) or ():
            children.add(id(child))
    return [
        s for k, s in found.items()
        if k not in children and id(getattr(s, "optimizer", None)) in optimizers
        and getattr(s, "optimizer", None) is optimizers[id(s.optimizer)]
    ]


def live_scalers(run: Any, nearby: list[Any]) -> list[Any]:
    found: dict[int, Any] = {}
    for ref in list(getattr(run, "scalers", {}).values()):
        s = ref()
        if s is not None:
            found[id(s)] = s
    for s in nearby:
        if isinstance(s, torch.amp.GradScaler):
            found[id(s)] = s
    return list(found.values())


def scaler_scale(scaler: Any) -> float | None:
    scale = getattr(scaler, "_scale", None)
    if isinstance(scale, torch.Tensor) and scale.numel() == 1:
        return float(scale.detach().reshape(-1)[0].cpu())  # a save is a boundary: one sync is fine
    return None


def describe_live_optimizer(info: Any, opt: Any) -> LiveOptimizer:
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    n_with_state = n_tensors = numel = 0
    for st in opt.state.values():
        counted = False
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and k != "step":
                n_tensors += 1
                numel += v.numel()
                counted = True
        n_with_state += counted
    lrs = [float(g["lr"]) for g in opt.param_groups if isinstance(g.get("lr"), (int, float))]
    initial = [g.get("initial_lr") for g in opt.param_groups]
    names = getattr(info, "names", None) or []
    return LiveOptimizer(
        label=getattr(info, "label", type(opt).__name__),
        name=names[-1] if names else None,
        type_name=type(opt).__name__,
        n_params=n_params,
        n_with_state=n_with_state,
        n_tensors=n_tensors,
        numel=numel,
        kind=optimizer_kind(opt.state.values()),
        lrs=lrs,
        initial_lrs=[float(x) if isinstance(x, (int, float)) else None for x in initial],
        steps=getattr(info, "steps", 0),
    )


class CheckpointCheck(Check):
    """Checkpoints missing live optimizer / scheduler / grad-scaler state, and files that do not read back equal."""

    name = "checkpoint"

    def __init__(self, run: Any):
        super().__init__(run)
        self.group: SaveGroup | None = None
        self.verified_layouts: set[tuple] = set()
        self.files: dict[str, FileRecord] = {}
        self.weight_exports: list[str] = []
        self.optimizer_state_saved: set[str] = set()  # labels of live optimizers whose state was saved
        self.live_at_exports: list[LiveOptimizer] = []
        self.counts: dict[tuple[str, str], int] = {}
        self.saves = 0
        self.verified = 0
        self.verify_seconds = 0.0
        self.verify_bytes = 0

    # -- events ---------------------------------------------------------------------------------------
    def on_checkpoint_saved(self, event: Any) -> None:
        data, refs = event.data, event.refs or {}
        obj = refs.get("obj")
        inv = refs.get("inventory") or inventory(obj)
        self.saves += 1
        label = os.path.basename(data["path"]) if data.get("path") else f"<{data.get('target')}>"
        record = SaveRecord(label, data.get("path"), inv, data.get("where"))
        key = data.get("dir") or (data.get("path") or f"<{data.get('target')}>")
        if self.group is not None and (self.group.key != key or self.group.steps != self.run.steps):
            self._close_group()
        if inv.whole_modules:
            self._whole_module(record, refs)
        if inv.is_checkpoint or inv.counters:
            if self.group is None:
                self.group = self._open_group(key, refs.get("nearby") or [])
            self.group.saves.append(record)
            self._verify(record, obj, refs.get("source"), data)
        if data.get("path") and data["path"] in self.files and not (inv.is_checkpoint or inv.counters):
            self.files.pop(data["path"], None)

    def on_checkpoint_loaded(self, event: Any) -> None:
        path = event.data.get("path")
        record = self.files.get(path) if path else None
        if record is None:
            return
        now = _stat(path)
        if now is None or now == record.stat:
            return
        self._changed_on_disk(path, record, (event.refs or {}).get("obj"), "loaded")

    def on_epoch_end(self, event: Any) -> None:
        self._close_group()

    def finish(self) -> None:
        self._close_group()
        if self.run.options.checkpoint_verify != "off":
            for path, record in list(self.files.items()):
                now = _stat(path) if record.crcs else None
                if now is not None and now != record.stat:
                    loaded = read_back(path)
                    if not isinstance(loaded, Unverifiable):
                        self._changed_on_disk(path, record, loaded, "re-read at run end")
        self._weights_only_exports()
        if self.saves:
            self.run.emit("checkpoint_summary", {
                "saves": self.saves, "verified": self.verified, "verify_seconds": round(self.verify_seconds, 6),
                "verify_bytes": self.verify_bytes, "policy": self.run.options.checkpoint_verify})

    # -- live state -----------------------------------------------------------------------------------
    def _open_group(self, key: str, nearby: list[Any]) -> SaveGroup:
        group = SaveGroup(key, self.run.steps)
        live: dict[int, Any] = {}
        for info in list(self.run.optimizers.values()):
            opt = info.ref()
            if opt is None:
                continue
            live[id(opt)] = opt
            group.optimizers.append(describe_live_optimizer(info, opt))
        labels = {id(info.ref()): info.label for info in self.run.optimizers.values() if info.ref() is not None}
        frames = user_frames(8)
        sched_objs = live_schedulers(self.run, nearby, live)
        scaler_objs = live_scalers(self.run, nearby)
        names = names_in_frames({id(o): o for o in sched_objs + scaler_objs}, frames)
        for s in sched_objs:
            group.schedulers.append(LiveScheduler(
                type_name=type(s).__name__,
                name=_name_of(s, names),
                last_epoch=int(getattr(s, "last_epoch", 0) or 0),
                lrs=[float(x) for x in (getattr(s, "_last_lr", None) or [])],
                base_lrs=[float(x) for x in (getattr(s, "base_lrs", None) or [])],
                optimizer_label=labels.get(id(s.optimizer), type(s.optimizer).__name__),
            ))
        if group.optimizers:
            for sc in scaler_objs:
                scale = scaler_scale(sc) if sc.is_enabled() else None
                if scale is not None:
                    group.scalers.append(LiveScaler(_name_of(sc, names), scale, getattr(sc, "_init_scale", None)))
        return group

    # -- completeness -----------------------------------------------------------------------------------
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
            import math

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

    def _whole_module(self, record: SaveRecord, refs: dict[str, Any]) -> None:
        live = [info for info in self.run.optimizers.values() if info.ref() is not None]
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

    # -- round trip ---------------------------------------------------------------------------------------
    def _verify(self, record: SaveRecord, obj: Any, source: Any, data: dict[str, Any]) -> None:
        policy = getattr(self.run.options, "checkpoint_verify", "first")
        # Size and mtime as written: a later load notices a rewrite by something else. Not for a save
        # into an open file object: the user may go on writing to it (after torch.save, before
        # close), so only the saved entries' fingerprints (below) can tell a rewrite.
        if record.path and data.get("target") == "path":
            st = _stat(record.path)
            if st is not None:
                self.files[record.path] = FileRecord(st, {}, self.run.steps, record.label)
        if policy == "off" or source is None:
            return
        layout = (tuple(sorted(w.path for w in record.inv.weights)), tuple(o.path for o in record.inv.optimizers),
                  tuple(s.path for s in record.inv.schedulers), tuple(s.path for s in record.inv.scalers),
                  record.label if record.path is None else os.path.splitext(record.label)[1])
        if policy == "first" and layout in self.verified_layouts:
            return
        self.verified_layouts.add(layout)
        nbytes = data.get("bytes") or 0
        available = _available_memory()
        if available is not None and nbytes > available * MAX_READBACK_FRACTION:
            self._unverifiable(record, f"not read back: the file is {nbytes / 1e9:.1f} GB and only "
                                       f"{available / 1e9:.1f} GB of memory is available")
            return
        t0 = time.perf_counter()
        src = source()
        if isinstance(src, Unverifiable):
            self._unverifiable(record, src.why)
            return
        loaded = read_back(src)
        if isinstance(loaded, Unverifiable):
            self._unverifiable(record, loaded.why)
            return
        diffs, total = compare(obj, loaded)
        crcs = leaf_crcs(loaded) if record.path else {}
        seconds = time.perf_counter() - t0
        self.verified += 1
        self.verify_seconds += seconds
        self.verify_bytes += nbytes
        self.run.emit("checkpoint_verified", {"file": record.label, "path": record.path, "bytes": nbytes,
                                              "seconds": round(seconds, 6), "differences": total})
        if record.path:
            st = _stat(record.path)
            if st is not None:
                self.files[record.path] = FileRecord(st, crcs, self.run.steps, record.label)
        if total:
            shown = "; ".join(f"{d.path}: {d.detail}" for d in diffs[:3])
            if data.get("main_thread") is False:
                shown += (f"; saved from thread {data.get('thread')!r}: if training kept updating these tensors "
                          f"during the save, the file holds a mix of steps")
            self.report(Finding(
                code="checkpoint/roundtrip-mismatch",
                severity="error",
                message=(f"{record.label} does not read back as saved: {total} difference(s) between the object "
                         f"passed to torch.save and the file loaded with weights_only=True ({shown})."),
                fix="Save plain state dicts of CPU/GPU tensors and builtin values; make sure nothing else writes "
                    "the same path, and re-save.",
                evidence={"file": record.label, "path": record.path, "differences": total,
                          "first": [d.as_dict() for d in diffs]},
                where=record.where,
                key=record.path or record.label,
            ))

    def _unverifiable(self, record: SaveRecord, why: str) -> None:
        self.report(Finding(
            code="checkpoint/unverifiable",
            severity="info",
            message=f"{record.label} could not be read back safely to verify it: {why}.",
            fix="Save state dicts (tensors, numbers, strings, lists, dicts) so the file loads with "
                "torch.load(path, weights_only=True).",
            evidence={"file": record.label, "path": record.path, "why": why},
            where=record.where,
            key=record.path or record.label,
        ))

    def _changed_on_disk(self, path: str, record: FileRecord, loaded: Any, how: str) -> None:
        if not record.crcs:  # not read back when saved: only size and mtime to go by
            now_stat = _stat(path)
            if how != "loaded" or now_stat is None:
                return
            record.stat, (size_then, mtime_then) = now_stat, record.stat
            self.report(Finding(
                code="checkpoint/changed-on-disk",
                severity="warning",
                message=(f"{record.label} was rewritten on disk after this run saved it at step {record.steps} "
                         f"(size {size_then} -> {now_stat[0]} bytes, modified {(now_stat[1] - mtime_then) / 1e9:.1f} s "
                         f"later) by something other than this run's torch.save; it is loaded now, so what is "
                         f"loaded may not be what was saved."),
                fix="Find what else writes this path (another job, a copy, a sync tool); with "
                    "checkpoint_verify='every' watchdog fingerprints each save and names the changed entries.",
                evidence={"file": record.label, "path": path, "saved_at_step": record.steps,
                          "size_then": size_then, "size_now": now_stat[0], "how": how},
                key=path,
            ))
            return
        if loaded is None:
            return
        now = leaf_crcs(loaded)
        changed = crc_changes(record.crcs, now)
        record.stat = _stat(path) or record.stat  # judged: run end re-reads only on a further change
        if not changed:
            return
        self.report(Finding(
            code="checkpoint/changed-on-disk",
            severity="error",
            message=(f"{record.label} changed on disk after this run saved it at step {record.steps}: "
                     f"{len(changed)} entr{'y' if len(changed) == 1 else 'ies'} differ when it is {how} "
                     f"({', '.join(changed[:4])}{' ...' if len(changed) > 4 else ''})."),
            fix="Find what else writes this path (another job, a copy, a sync tool) and re-save; "
                "never resume from a file that differs from what was saved.",
            evidence={"file": record.label, "path": path, "saved_at_step": record.steps, "changed": changed[:50],
                      "how": how},
            key=path,
        ))
