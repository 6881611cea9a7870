"""Training probe: counts optimizer steps and backward calls, and finds the models being trained.

Per step it costs one global optimizer post-step hook call (a counter, an integer compare against
the next step alarm, and a dict lookup) and, per ``backward()``, one wrapper call. Each hook and
wrapper runs its bookkeeping (``count_step``, ``count_backward``, ``count_forward``) inside a
``try``: an error there switches that counter off (the hook becomes a pass-through) and becomes a
``watchdog/internal-error`` finding; the user's call is never affected. Models are found
in the user's frames when a DataLoader pass starts and at each optimizer's first step (boundaries,
not the hot path); only root models with parameters get a forward pre-hook, which counts forwards,
in which grad mode and module mode, for the innermost open pass. Evaluation-like forwards (under
``no_grad`` while no DataLoader pass is open, or under ``no_grad`` in eval mode inside one) also note,
per model, the step count at which they ran; training forwards (grad on) never take that branch.

What it counts is written into the run's ``LoopState`` (``run.loop``, core/loop.py), which this probe
and the DataLoader probe own. Step alarms (``run.loop.at_step(step, fn)``) ring from ``count_step``:
the only per-step cost is comparing the step count with the next alarm's step.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch import nn

from .findings import Finding
from .frames import UserFrame, objects_in_frames
from .patching import Undo

if TYPE_CHECKING:
    from .run import Run

_is_grad_enabled = torch.is_grad_enabled
_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)


@dataclass
class OptimizerInfo:
    ref: Any = field(repr=False)
    type_name: str
    first_step: int
    steps: int = 0
    names: list[str] = field(default_factory=list)
    last_step: int = 0  # the run's step count at this optimizer's latest step

    def __post_init__(self) -> None:
        self.last_step = max(self.last_step, self.first_step)

    @property
    def label(self) -> str:
        return f"`{self.names[-1]}` ({self.type_name})" if self.names else self.type_name


STEPS_COMPONENT = "probe:training:steps"
BACKWARDS_COMPONENT = "probe:training:backwards"
FORWARD_COMPONENT = "probe:training:forwards"
GETSTATE_COMPONENT = "probe:training:getstate"

# Distinct step counts kept per model for evaluation forwards outside DataLoader passes.
EVAL_STEPS_CAP = 65536


@dataclass
class ModelInfo:
    ref: Any = field(repr=False)
    type_name: str
    names: list[str] = field(default_factory=list)
    # Evaluation forwards: the distinct step counts at which this model ran forwards under
    # no_grad/inference_mode while no DataLoader pass was open, or in eval mode under no_grad inside
    # a pass; and, outside passes, how many no_grad forwards ran (in train mode).
    eval_steps: list[int] = field(default_factory=list, repr=False)
    nograd_forwards_outside: int = 0
    nograd_train_mode_forwards_outside: int = 0
    counting: str = ""  # how forwards are counted: "hook", or "compiled-call" (compiled in place)
    stop_counting: Any = field(default=None, repr=False)  # the Undo of that

    @property
    def label(self) -> str:
        return f"`{self.names[-1]}` ({self.type_name})" if self.names else self.type_name


class RootForwardHook:
    """The forward pre-hook watchdog puts on a root model.

    It counts the forward through ``probe.count_forward(info, module)``; an error there switches
    forward counting off for the rest of the run (an internal-error finding) and the hook becomes a
    no-op. It must never make the user's model unpicklable: the run patches
    ``nn.Module.__getstate__`` to leave these hooks out of ``torch.save(model)`` and
    ``copy.deepcopy(model)``; for a model class with its own ``__getstate__``, the hook pickles as
    ``functools.partial(dict.get, {})``, a standard-library no-op (it returns the forward's args
    unchanged) that loads without watchdog.
    """

    __slots__ = ("probe", "info")

    def __init__(self, probe: "TrainingProbe", info: "ModelInfo"):
        self.probe = probe
        self.info = info

    def __call__(self, module: nn.Module, args: Any) -> None:
        probe = self.probe
        if probe.counting_forwards:
            try:
                probe.count_forward(self.info, module)
            except Exception as exc:
                probe.counting_forwards = False
                probe.run.internal_error(FORWARD_COMPONENT, exc)

    def __reduce__(self) -> Any:
        return (functools.partial, (dict.get, {}))


def _without_watchdog_hooks(state: Any) -> Any:
    """``Module.__getstate__``'s result, less the forward pre-hooks watchdog put on the model."""
    hooks = state.get("_forward_pre_hooks") if isinstance(state, dict) else None
    if hooks and any(isinstance(h, RootForwardHook) for h in hooks.values()):
        state = dict(state)
        state["_forward_pre_hooks"] = type(hooks)(
            (k, h) for k, h in hooks.items() if not isinstance(h, RootForwardHook))
    return state


def _getstate_without_watchdog_hooks(original: Any, run: "Run") -> Any:
    @functools.wraps(original)
    def __getstate__(self: nn.Module) -> Any:
        state = original(self)
        if GETSTATE_COMPONENT not in run.disabled:
            try:
                return _without_watchdog_hooks(state)
            except Exception as exc:  # the hooks then pickle as a no-op (RootForwardHook.__reduce__)
                run.internal_error(GETSTATE_COMPONENT, exc)
        return state

    return __getstate__


def _compiled_in_place(module: nn.Module) -> bool:
    return module.__dict__.get("_compiled_call_impl") is not None


def _wrap_compiled_call(module: nn.Module, count: Any, name: str) -> Undo:
    """Count each call of a ``model.compile()``-d module's compiled call, in eager Python around it.

    The undo puts the compiled call back, unless the user compiled the model again meanwhile.
    """
    compiled = module.__dict__["_compiled_call_impl"]
    module_ref = weakref.ref(module)

    def counted_compiled_call(*args: Any, **kwargs: Any) -> Any:
        counted = module_ref()
        if counted is not None:
            count(counted, args)
        return compiled(*args, **kwargs)

    module.__dict__["_compiled_call_impl"] = counted_compiled_call

    def restore() -> None:
        owner = module_ref()
        if owner is not None and owner.__dict__.get("_compiled_call_impl") is counted_compiled_call:
            owner.__dict__["_compiled_call_impl"] = compiled

    return Undo(restore, f"counted compiled call of {name}")


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


class TrainingProbe:
    name = "training"

    def install(self, run: "Run") -> None:
        self.run = run
        self.counting_steps = True  # switched off (a pass-through) by an error in count_step
        self.counting_forwards = True
        self.loop = loop = run.loop
        probe = self

        def after_optimizer_step(optimizer: Any, args: Any, kwargs: Any) -> None:
            if probe.counting_steps:
                try:
                    probe.count_step(optimizer)
                except Exception as exc:
                    probe.counting_steps = False
                    run.internal_error(STEPS_COMPONENT, exc)

        handle = register_optimizer_step_post_hook(after_optimizer_step)
        run.patches.handle(handle, "optimizer step post-hook")

        run.patches.hook(torch.autograd, "backward", lambda args, kwargs: probe.count_backward(),
                         on_error=lambda exc: run.internal_error(BACKWARDS_COMPONENT, exc))
        run.patches.setattr(nn.Module, "__getstate__", _getstate_without_watchdog_hooks(nn.Module.__getstate__, run))
        loop._model_discovery = self.discover_models  # used by other probes at their boundaries

    # -- per step (called inside the guards above: an error here never reaches the user) ---------
    def count_step(self, optimizer: Any) -> None:
        loop = self.loop
        loop._steps += 1
        if loop._steps >= loop._next_step_alarm:
            loop._ring_alarms(optimizer)
        passes = loop.open_passes
        if passes:
            passes[-1].steps += 1
        info = loop._optimizers.get(id(optimizer))
        if info is None or info.ref() is not optimizer:
            try:
                self._first_step(optimizer)
            except Exception as exc:
                self.run.internal_error("probe:training:optimizers", exc)
                # Recorded anyway, so the first-step work is not retried at every step.
                loop._optimizers[id(optimizer)] = OptimizerInfo(weakref.ref(optimizer), type(optimizer).__name__,
                                                                loop._steps, 1)
        else:
            info.steps += 1
            info.last_step = loop._steps

    def count_backward(self) -> None:
        passes = self.loop.open_passes
        if passes:
            passes[-1].backwards += 1

    def _first_step(self, optimizer: Any) -> None:
        run = self.run
        from .frames import names_in_frames, user_frames

        frames = user_frames(4)
        names = names_in_frames({id(optimizer): optimizer}, frames).get(id(optimizer), [])
        try:  # loops without DataLoaders: the model is in the stepping frame
            self.discover_models(frames)
        except Exception as exc:  # the optimizer is still recorded, so this runs once, not per step
            run.internal_error("probe:training:models", exc)
        info = OptimizerInfo(weakref.ref(optimizer), type(optimizer).__name__, self.loop.steps, 1, names)
        self.loop._optimizers[id(optimizer)] = info
        run.emit(
            "optimizer_first_step",
            {"optimizer": info.label, "type": info.type_name, "step": self.loop.steps,
             "param_tensors": sum(len(g["params"]) for g in optimizer.param_groups)},
            refs={"optimizer": optimizer},
        )

    # -- boundaries -----------------------------------------------------------------------------
    def discover_models(self, frames: list[UserFrame]) -> None:
        """Hook root models (modules with parameters, not inside another found model) in ``frames``."""
        models = self.loop._models
        found = objects_in_frames(nn.Module, frames)
        for obj_id, (module, name) in found.items():
            known = models.get(obj_id)
            if known is not None and known.ref() is module:
                if name not in known.names:
                    known.names.append(name)
                continue
            if not _has_parameters(module) or self._inside_known_model(module):
                continue
            info = ModelInfo(weakref.ref(module), type(module).__name__, [name])
            models[obj_id] = info
            try:
                self._count_forwards(module, info, name)
            except Exception as exc:  # a ScriptModule, say: only this model goes uncounted
                self._report_not_hooked(info, exc)
        for info in list(models.values()):  # a hooked model compiled in place since
            module = info.ref()
            if module is not None and info.counting == "hook" and _compiled_in_place(module):
                info.stop_counting()
                self._count_forwards(module, info, info.names[-1] if info.names else info.type_name)

    def _report_not_hooked(self, info: ModelInfo, exc: Exception) -> None:
        info.counting = "none"
        self.run.report(Finding(
            code="watchdog/model-not-hooked",
            severity="info",
            message=f"watchdog cannot count the forwards of {info.label} ({type(exc).__name__}: {exc}); "
                    "train/eval overlap, checkpoints and memory are still watched, but passes over this "
                    "model's data are labelled from optimizer steps, backward() and no_grad alone.",
            fix="Nothing to change for training. To have evaluation passes recognised, run them under "
                "`torch.no_grad()` or say so: `watchdog.loader_role(val_loader, 'eval')`.",
            evidence={"model": info.type_name, "names": list(info.names), "error": f"{type(exc).__name__}: {exc}"},
            key=f"model-not-hooked:{info.type_name}:{info.names[-1] if info.names else ''}",
        ))

    def _count_forwards(self, module: nn.Module, info: ModelInfo, name: str) -> None:
        """Count the model's forwards: a forward pre-hook, or for a model compiled in place
        (``model.compile()``) a wrapper around its compiled call, outside what dynamo traces (a hook
        would be traced into the compiled frames and change what gets compiled)."""
        count = RootForwardHook(self, info)
        if _compiled_in_place(module):
            info.counting = "compiled-call"
            info.stop_counting = self.run.patches.push(_wrap_compiled_call(module, count, name))
        else:
            info.counting = "hook"
            info.stop_counting = self.run.patches.handle(
                module.register_forward_pre_hook(count), f"forward pre-hook on {name}")

    def _inside_known_model(self, module: nn.Module) -> bool:
        for info in list(self.loop.models.values()):
            root = info.ref()
            if root is not None and root is not module and any(m is module for m in root.modules()):
                return True
        return False

    def count_forward(self, info: ModelInfo, module: nn.Module) -> None:
        """One forward of a root model: counted for the run and the innermost open pass."""
        if _is_compiling():
            return
        loop = self.loop
        grad = _is_grad_enabled()
        training = module.training
        passes = loop.open_passes
        if passes:
            current = passes[-1]
            current.forwards += 1
            if not grad:
                current.nograd_forwards += 1
                if not training:  # eval mode + no_grad: evaluation, even inside a training pass
                    _note_eval_step(info, loop.steps)
            if not training:
                current.eval_mode_forwards += 1
        elif not grad:  # evaluation outside any DataLoader pass (not the training hot path)
            info.nograd_forwards_outside += 1
            if training:
                info.nograd_train_mode_forwards_outside += 1
            _note_eval_step(info, loop.steps)


def _note_eval_step(info: ModelInfo, now: int) -> None:
    steps = info.eval_steps
    if not steps or steps[-1] != now:
        if len(steps) < EVAL_STEPS_CAP:
            steps.append(now)
        else:
            steps[-1] = now
