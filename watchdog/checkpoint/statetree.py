"""What a saved (or loaded) object holds, found structurally.

`inventory(obj)` walks whatever was handed to `torch.save` (or came back from `torch.load`) and
classifies its parts by shape, never by key name:

* an optimizer state dict is a mapping with a `state` mapping and a `param_groups` list;
* a scheduler state dict is a mapping with `last_epoch` and one of `base_lrs` / `_last_lr` /
  `_step_count` / `num_bad_epochs`;
* a grad-scaler state dict is a mapping with `scale` and `growth_factor`;
* module weights are a mapping of str -> Tensor (a `state_dict()`), or a pickled `nn.Module`;
* counters are numbers under epoch/step-like keys (`epoch`, `global_step`, `iter`, ...).

Lists are walked too (Lightning's `optimizer_states` / `lr_schedulers`), and so is any nesting.
The walk is bounded (depth, node count) and never touches tensor data, so it costs microseconds
per container, whatever the model size. Pure: no torch state is changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

MAX_DEPTH = 12
MAX_NODES = 20_000

_COUNTER_KEY = re.compile(
    r"(^|[_\-. ])(epoch|epochs|step|steps|global_step|iter|iters|iteration|iterations|"
    r"cur_epoch|current_epoch|start_epoch|last_epoch|num_updates|updates)$",
    re.IGNORECASE,
)
_SCHEDULER_KEYS = ("base_lrs", "_last_lr", "_step_count", "num_bad_epochs")


@dataclass
class OptimizerState:
    """An optimizer state dict found in a saved object."""

    path: str
    n_params: int  # parameters listed in param_groups
    n_with_state: int  # parameters that have per-parameter state (moments, buffers)
    n_tensors: int  # state tensors (exp_avg, exp_avg_sq, momentum_buffer, ...), `step` excluded
    numel: int
    kind: str  # "Adam moments", "momentum buffers", ...
    lrs: list[float]
    steps: float | None  # the largest per-parameter `step` counter, when there is one
    pickled: bool = False  # a whole Optimizer object was pickled


@dataclass
class SchedulerState:
    path: str
    last_epoch: int | None
    last_lrs: list[float] | None
    base_lrs: list[float] | None
    pickled: bool = False


@dataclass
class ScalerState:
    path: str
    scale: float | None


@dataclass
class Weights:
    path: str
    n_tensors: int
    numel: int
    module_type: str | None = None  # set when a whole nn.Module was pickled


@dataclass
class Counter:
    path: str
    key: str
    value: float


@dataclass
class Inventory:
    weights: list[Weights] = field(default_factory=list)
    optimizers: list[OptimizerState] = field(default_factory=list)
    schedulers: list[SchedulerState] = field(default_factory=list)
    scalers: list[ScalerState] = field(default_factory=list)
    counters: list[Counter] = field(default_factory=list)
    top_type: str = ""
    truncated: bool = False  # the walk hit MAX_DEPTH / MAX_NODES

    @property
    def is_checkpoint(self) -> bool:
        """Holds training state (weights, optimizer, scheduler or scaler), not just data."""
        return bool(self.weights or self.optimizers or self.schedulers or self.scalers)

    @property
    def whole_modules(self) -> list[Weights]:
        return [w for w in self.weights if w.module_type is not None]

    def progress(self) -> float | None:
        """The largest epoch/step-like counter found (0 when all are 0), or None."""
        values = [c.value for c in self.counters]
        values += [s.last_epoch for s in self.schedulers if s.last_epoch is not None]
        return max(values) if values else None

    def summary(self) -> dict[str, Any]:
        """JSON-safe description for events and evidence."""
        return {
            "top_type": self.top_type,
            "weights": [
                {"path": w.path, "tensors": w.n_tensors, "numel": w.numel, "module_type": w.module_type}
                for w in self.weights
            ],
            "optimizers": [
                {
                    "path": o.path,
                    "params": o.n_params,
                    "with_state": o.n_with_state,
                    "state_tensors": o.n_tensors,
                    "kind": o.kind,
                    "lrs": o.lrs,
                    "steps": o.steps,
                    "pickled": o.pickled,
                }
                for o in self.optimizers
            ],
            "schedulers": [
                {"path": s.path, "last_epoch": s.last_epoch, "last_lrs": s.last_lrs, "pickled": s.pickled}
                for s in self.schedulers
            ],
            "scalers": [{"path": s.path, "scale": s.scale} for s in self.scalers],
            "counters": [{"path": c.path, "key": c.key, "value": c.value} for c in self.counters],
            "truncated": self.truncated,
        }


# ---------------------------------------------------------------------------------------------
# shape tests


def is_optimizer_state(m: Any) -> bool:
    return (
        isinstance(m, Mapping)
        and "state" in m
        and "param_groups" in m
        and isinstance(m["state"], Mapping)
        and isinstance(m["param_groups"], (list, tuple))
    )


def is_scheduler_state(m: Any) -> bool:
    return isinstance(m, Mapping) and "last_epoch" in m and any(k in m for k in _SCHEDULER_KEYS)


def is_scaler_state(m: Any) -> bool:
    return isinstance(m, Mapping) and "scale" in m and "growth_factor" in m


_PARAM_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked", "_orig", "_g", "_v")


def is_weights(m: Any) -> bool:
    """A module's state_dict: str -> Tensor, keys named like module entries (`fc.weight`, `bias`).

    A few non-tensor extras are tolerated; a dict of data tensors (`{"x": ..., "y": ...}`) is not weights.
    """
    if not isinstance(m, Mapping) or not m:
        return False
    tensors = 0
    named = False
    for k, v in m.items():
        if not isinstance(k, str):
            return False
        if isinstance(v, torch.Tensor):
            tensors += 1
            if not named and ("." in k or k.endswith(_PARAM_SUFFIXES)):
                named = True
        elif isinstance(v, (Mapping, list, tuple)):
            return False
    return named and tensors > 0 and tensors * 2 >= len(m)


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, torch.Tensor) and v.numel() == 1 and v.device.type == "cpu" and not v.is_floating_point():
        return float(v.reshape(-1)[0])
    return None


def _scalar(v: Any) -> float | None:
    """A number, or a one-element CPU tensor's value (never a device sync)."""
    if isinstance(v, torch.Tensor):
        if v.numel() == 1 and v.is_cpu:
            return float(v.item())
        return None
    if isinstance(v, bool):
        return None
    return float(v) if isinstance(v, (int, float)) else None


def _floats(v: Any) -> list[float] | None:
    if isinstance(v, (list, tuple)):
        out = []
        for x in v:
            n = _number(x) if not isinstance(x, torch.Tensor) else None
            if n is None and isinstance(x, torch.Tensor) and x.numel() == 1 and x.device.type == "cpu":
                n = float(x.reshape(-1)[0])
            if n is None:
                return None
            out.append(n)
        return out
    return None


def optimizer_kind(state_entries: Any) -> str:
    """Name what per-parameter state holds: "Adam moments", "momentum buffers", ..."""
    keys: set[str] = set()
    for i, entry in enumerate(state_entries):
        if isinstance(entry, Mapping):
            keys.update(k for k in entry if isinstance(k, str))
        if i >= 7:
            break
    if "exp_avg" in keys and "exp_avg_sq" in keys:
        return "Adam moments"
    if "momentum_buffer" in keys:
        return "momentum buffers"
    if "acc_delta" in keys:
        return "Adadelta averages"
    if "square_avg" in keys:
        return "RMSprop averages"
    if "exp_inf" in keys:
        return "Adamax moments"
    if "ax" in keys:
        return "ASGD averages"
    if "step_size" in keys and "prev" in keys:
        return "Rprop step sizes"
    if "sum" in keys:
        return "Adagrad sums"
    if "exp_avg" in keys:
        return "moment estimates"
    return "per-parameter state" if keys else "no per-parameter state"


def describe_optimizer_state(sd: Mapping, path: str, pickled: bool = False) -> OptimizerState:
    state = sd["state"]
    groups = sd["param_groups"]
    n_params = 0
    lrs: list[float] = []
    for g in groups:
        if isinstance(g, Mapping):
            params = g.get("params", ())
            n_params += len(params) if isinstance(params, (list, tuple)) else 0
            lr = g.get("lr")
            if isinstance(lr, torch.Tensor) and lr.numel() == 1 and lr.device.type == "cpu":
                lr = float(lr.reshape(-1)[0])
            if isinstance(lr, (int, float)) and not isinstance(lr, bool):
                lrs.append(float(lr))
    n_with_state = n_tensors = numel = 0
    steps: float | None = None
    Tensor = torch.Tensor
    for entry in state.values():
        if not isinstance(entry, Mapping):
            continue
        counted = False
        for k, v in entry.items():
            if k == "step":
                if steps is None:  # every parameter of an optimizer shares one step count
                    steps = _scalar(v)
                continue
            if isinstance(v, Tensor):
                n_tensors += 1
                numel += v.numel()
                counted = True
        if counted:
            n_with_state += 1
    return OptimizerState(
        path=path,
        n_params=n_params,
        n_with_state=n_with_state,
        n_tensors=n_tensors,
        numel=numel,
        kind=optimizer_kind(state.values()),
        lrs=lrs,
        steps=steps,
        pickled=pickled,
    )


def describe_scheduler_state(sd: Mapping, path: str, pickled: bool = False) -> SchedulerState:
    le = _number(sd.get("last_epoch"))
    return SchedulerState(
        path=path,
        last_epoch=int(le) if le is not None else None,
        last_lrs=_floats(sd.get("_last_lr")),
        base_lrs=_floats(sd.get("base_lrs")),
        pickled=pickled,
    )


# ---------------------------------------------------------------------------------------------
# the walk


def _child_path(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def inventory(obj: Any) -> Inventory:
    """Classify what `obj` holds. Never raises on odd objects; bounded in depth and nodes."""
    inv = Inventory(top_type=type(obj).__name__)
    budget = [MAX_NODES]
    seen: set[int] = set()

    def visit(x: Any, path: str, depth: int) -> None:
        if budget[0] <= 0 or depth > MAX_DEPTH:
            inv.truncated = True
            return
        budget[0] -= 1
        if isinstance(x, (Mapping, list, tuple)) or hasattr(x, "state_dict"):
            if id(x) in seen:
                return
            seen.add(id(x))
        if isinstance(x, torch.Tensor):
            return
        if isinstance(x, torch.nn.Module):
            n = numel = 0
            for t in x.state_dict().values():
                if isinstance(t, torch.Tensor):
                    n += 1
                    numel += t.numel()
            inv.weights.append(Weights(path or "<root>", n, numel, module_type=type(x).__name__))
            return
        if isinstance(x, torch.optim.Optimizer):
            inv.optimizers.append(describe_optimizer_state(x.state_dict(), path or "<root>", pickled=True))
            return
        if isinstance(x, torch.optim.lr_scheduler.LRScheduler):
            inv.schedulers.append(describe_scheduler_state(x.state_dict(), path or "<root>", pickled=True))
            return
        if isinstance(x, Mapping):
            where = path or "<root>"
            if is_optimizer_state(x):
                inv.optimizers.append(describe_optimizer_state(x, where))
                return
            if is_scheduler_state(x):
                inv.schedulers.append(describe_scheduler_state(x, where))
                return
            if is_scaler_state(x):
                inv.scalers.append(ScalerState(where, _number(x.get("scale"))))
                return
            if is_weights(x):
                n = numel = 0
                for v in x.values():
                    if isinstance(v, torch.Tensor):
                        n += 1
                        numel += v.numel()
                inv.weights.append(Weights(where, n, numel))
                if len(x) - n:  # non-tensor extras beside the weights: an `epoch` key, say
                    _counters(x, path)
                return
            _counters(x, path)
            for i, (k, v) in enumerate(x.items()):
                if i >= MAX_NODES or budget[0] <= 0:
                    inv.truncated = True
                    break
                if isinstance(v, (Mapping, list, tuple)) or _interesting(v):
                    visit(v, _child_path(path, k), depth + 1)
            return
        if isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                if i >= MAX_NODES or budget[0] <= 0:
                    inv.truncated = True
                    break
                if isinstance(v, (Mapping, list, tuple)) or _interesting(v):
                    visit(v, _child_path(path, i), depth + 1)

    def _counters(m: Mapping, path: str) -> None:
        for i, (k, v) in enumerate(m.items()):
            if i >= MAX_NODES:
                break
            if isinstance(k, str) and _COUNTER_KEY.search(k):
                n = _number(v)
                if n is not None:
                    inv.counters.append(Counter(_child_path(path, k), k, n))

    try:
        visit(obj, "", 0)
    except Exception:  # odd user objects (broken __getitem__, ...) never crash the watcher
        inv.truncated = True
    return inv


def _interesting(v: Any) -> bool:
    return isinstance(
        v, (torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)
    )
