"""The training state live at a save or a resume, and the save being judged against it.

What a checkpoint should hold is what is live when it is written: every optimizer that has stepped
(``describe_live_optimizer``), every LR scheduler attached to one (``live_schedulers``), an enabled
grad scaler (``live_scalers``, ``scaler_scale``). ``SaveRecord`` is one ``torch.save`` as the
checkpoint checks see it: its label, path, what it held (``statetree.inventory``) and where.
Shared by the completeness, integrity and resume checks.
"""

from __future__ import annotations

import weakref

import os
from dataclasses import dataclass
from typing import Any

import torch

from .statetree import Inventory, inventory, optimizer_kind


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
    """One ``torch.save`` seen while watching: file name (or ``<target>``), path, what it held, where."""

    label: str
    path: str | None
    inv: Inventory
    where: str | None

    @classmethod
    def from_event(cls, event: Any) -> "SaveRecord":
        """The save a ``checkpoint_saved`` event reports (its inventory taken once, by the probe)."""
        data, refs = event.data, event.refs or {}
        inv = refs.get("inventory") or inventory(refs.get("obj"))
        label = os.path.basename(data["path"]) if data.get("path") else f"<{data.get('target')}>"
        return cls(label, data.get("path"), inv, data.get("where"))

    @property
    def holds_training_state(self) -> bool:
        """A checkpoint (optimizer / scheduler / scaler state) or a save with counters, not a bare export."""
        return bool(self.inv.is_checkpoint or self.inv.counters)


def name_of(obj: Any, frames_names: dict[int, list[str]]) -> str | None:
    """The user's variable name for ``obj`` (innermost frame's), from ``names_in_frames``."""
    names = frames_names.get(id(obj))
    return names[-1] if names else None


class SeenObjects:
    """The LR schedulers and grad scalers the checkpoint probe saw (its ``scheduler_seen`` /
    ``scaler_seen`` events), weakly: a check that needs them keeps one and feeds it those events."""

    def __init__(self) -> None:
        self.schedulers: dict[int, Any] = {}  # id -> weakref
        self.scalers: dict[int, Any] = {}

    def note(self, event: Any) -> None:
        obj = (event.refs or {}).get("object")
        if obj is not None:
            registry = self.schedulers if event.kind == "scheduler_seen" else self.scalers
            registry[id(obj)] = weakref.ref(obj)


def _alive_or_nearby(registry: dict[int, Any], nearby: list[Any], kind: type) -> dict[int, Any]:
    """The objects of ``registry`` still alive, and those of ``kind`` among ``nearby``, by id."""
    found: dict[int, Any] = {}
    for ref in list(registry.values()):
        obj = ref()
        if obj is not None:
            found[id(obj)] = obj
    found.update((id(obj), obj) for obj in nearby if isinstance(obj, kind))
    return found


def live_schedulers(seen: SeenObjects, nearby: list[Any], optimizers: dict[int, Any]) -> list[Any]:
    """LR schedulers attached to the given optimizers (by id), children of chained ones excluded."""
    found = _alive_or_nearby(seen.schedulers, nearby, torch.optim.lr_scheduler.LRScheduler)
    children: set[int] = set()
    for s in found.values():
        for child in getattr(s, "_schedulers", None) or ():
            children.add(id(child))
    return [
        s for k, s in found.items()
        if k not in children and id(getattr(s, "optimizer", None)) in optimizers
        and getattr(s, "optimizer", None) is optimizers[id(s.optimizer)]
    ]


def live_scalers(seen: SeenObjects, nearby: list[Any]) -> list[Any]:
    """Grad scalers seen updating this run or near the user's frames."""
    return list(_alive_or_nearby(seen.scalers, nearby, torch.amp.GradScaler).values())


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
