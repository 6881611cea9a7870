"""Training probe: counts optimizer steps and backward calls, and finds the models being trained.

Per step it costs one global optimizer post-step hook call (a counter and a dict lookup) and, per
``backward()``, one wrapper call. Models are found in the user's frames when a DataLoader pass
starts (a boundary, not the hot path); only root models with parameters get a forward pre-hook,
which counts forwards, in which grad mode and module mode, for the innermost open pass.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch import nn

from ..naming import UserFrame, objects_in_frames

if TYPE_CHECKING:
    from ..session import Run

_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)


@dataclass
class OptimizerInfo:
    ref: Any = field(repr=False)
    type_name: str
    first_step: int
    steps: int = 0
    names: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"`{self.names[-1]}` ({self.type_name})" if self.names else self.type_name


@dataclass
class ModelInfo:
    ref: Any = field(repr=False)
    type_name: str
    names: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"`{self.names[-1]}` ({self.type_name})" if self.names else self.type_name


class RootForwardHook:
    """The forward pre-hook watchdog puts on a root model.

    It must never make the user's model unpicklable: the run patches ``nn.Module.__getstate__`` to
    leave these hooks out of ``torch.save(model)`` and ``copy.deepcopy(model)``; for a model class
    with its own ``__getstate__``, the hook pickles as ``functools.partial(dict.get, {})``, a
    standard-library no-op (it returns the forward's args unchanged) that loads without watchdog.
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Any):
        self.fn = fn

    def __call__(self, module: nn.Module, args: Any) -> None:
        self.fn(module, args)

    def __reduce__(self) -> Any:
        return (functools.partial, (dict.get, {}))


def _getstate_without_watchdog_hooks(original: Any) -> Any:
    @functools.wraps(original)
    def __getstate__(self: nn.Module) -> Any:
        state = original(self)
        hooks = state.get("_forward_pre_hooks") if isinstance(state, dict) else None
        if hooks and any(isinstance(h, RootForwardHook) for h in hooks.values()):
            state = dict(state)
            state["_forward_pre_hooks"] = type(hooks)(
                (k, h) for k, h in hooks.items() if not isinstance(h, RootForwardHook))
        return state

    return __getstate__


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


class TrainingProbe:
    name = "training"

    def install(self, run: "Run") -> None:
        self.run = run
        handle = register_optimizer_step_post_hook(self._after_optimizer_step)
        run.patches.handle(handle, "optimizer step post-hook")

        original_backward = torch.autograd.backward

        @functools.wraps(original_backward)
        def backward(*args: Any, **kwargs: Any) -> Any:
            run.backwards += 1
            passes = run.open_passes
            if passes:
                passes[-1].backwards += 1
            return original_backward(*args, **kwargs)

        run.patches.setattr(torch.autograd, "backward", backward)
        run.patches.setattr(nn.Module, "__getstate__", _getstate_without_watchdog_hooks(nn.Module.__getstate__))
        run.discover_models = self.discover_models  # used by other probes at their boundaries

    # -- per step -----------------------------------------------------------------------------
    def _after_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        run = self.run
        run.steps += 1
        passes = run.open_passes
        if passes:
            passes[-1].steps += 1
        info = run.optimizers.get(id(optimizer))
        if info is None or info.ref() is not optimizer:
            try:
                self._first_step(optimizer)
            except Exception as exc:
                run.internal_error("probe:training", exc)
        else:
            info.steps += 1

    def _first_step(self, optimizer: Any) -> None:
        run = self.run
        from ..naming import names_in_frames, user_frames

        names = names_in_frames({id(optimizer): optimizer}, user_frames(4)).get(id(optimizer), [])
        info = OptimizerInfo(weakref.ref(optimizer), type(optimizer).__name__, run.steps, 1, names)
        run.optimizers[id(optimizer)] = info
        run.emit(
            "optimizer_first_step",
            {"optimizer": info.label, "type": info.type_name, "step": run.steps,
             "param_tensors": sum(len(g["params"]) for g in optimizer.param_groups)},
            refs={"optimizer": optimizer},
        )

    # -- boundaries -----------------------------------------------------------------------------
    def discover_models(self, frames: list[UserFrame]) -> None:
        """Hook root models (modules with parameters, not inside another found model) in ``frames``."""
        run = self.run
        found = objects_in_frames(nn.Module, frames)
        for obj_id, (module, name) in found.items():
            known = run.models.get(obj_id)
            if known is not None and known.ref() is module:
                if name not in known.names:
                    known.names.append(name)
                continue
            if not _has_parameters(module) or self._inside_known_model(module):
                continue
            info = ModelInfo(weakref.ref(module), type(module).__name__, [name])
            run.models[obj_id] = info
            run.patches.handle(module.register_forward_pre_hook(RootForwardHook(self._forward_pre_hook)),
                               f"forward pre-hook on {name}")

    def _inside_known_model(self, module: nn.Module) -> bool:
        for info in list(self.run.models.values()):
            root = info.ref()
            if root is not None and root is not module and any(m is module for m in root.modules()):
                return True
        return False

    def _forward_pre_hook(self, module: nn.Module, args: Any) -> None:
        if _is_compiling():
            return
        run = self.run
        grad = torch.is_grad_enabled()
        training = module.training
        run.forward_calls += 1
        if not grad:
            run.nograd_forward_calls += 1
        if not training:
            run.eval_mode_forward_calls += 1
        passes = run.open_passes
        if passes:
            current = passes[-1]
            current.forwards += 1
            if not grad:
                current.nograd_forwards += 1
            if not training:
                current.eval_mode_forwards += 1
