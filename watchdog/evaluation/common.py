"""Helpers shared by the ``eval/...`` checks: which models are trained, which submodules depend on mode.

Everything here runs at boundaries (an epoch closing, a step alarm, a pass ending), never per step.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Iterable

from torch import nn

MAX_NAMED = 8
# Wrappers whose train() only forwards the flag (DDP and friends): not mode-dependent by themselves.
_WRAPPER_MODULES = ("torch.nn.parallel", "torch.distributed")  # module paths quoted in a message; the evidence keeps up to 50


def mode_dependent_kind(module: nn.Module) -> str | None:
    """What ``module.training`` changes in ``module``'s own computation, or None when nothing does.

    Dropout of every kind with ``p > 0``, batch norm (batch statistics and running-stat updates), instance norm
    that tracks running stats, attention and RNN layers with a non-zero dropout, and any class that
    overrides ``train()`` as the mode switch (it does something of its own when the mode flips).
    """
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return "dropout" if module.p else None  # p=0 (nanoGPT's default) computes the same in both modes
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "batch norm"
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        return "instance norm" if module.track_running_stats else None
    if isinstance(module, nn.MultiheadAttention):
        return "attention dropout" if module.dropout else None
    if isinstance(module, nn.RNNBase):
        return "RNN dropout" if module.dropout else None
    cls = type(module)
    if cls.train is not nn.Module.train and not cls.__module__.startswith(_WRAPPER_MODULES) and _is_mode_switch(cls.train):
        return "custom train()"
    return None


@functools.lru_cache(maxsize=256)
def _is_mode_switch(train: Any) -> bool:
    """Whether a class's ``train`` can be the mode switch: callable as ``train(mode)``, as ``eval()``
    calls it. A ``train(self, x_pos, x_neg)`` that runs a training routine under that name (the
    forward-forward example's layers) is not one: ``eval()`` could not even call it."""
    try:
        inspect.signature(train).bind(None, False)
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): assume it is
        return True
    return True


def mode_dependent_modules(root: nn.Module, training: bool | None = None) -> list[tuple[str, str]]:
    """``(path, kind)`` of the mode-dependent submodules of ``root`` (the root itself is ``""``).

    With ``training`` given, only those whose own flag is ``training``.
    """
    found: list[tuple[str, str]] = []
    for path, module in root.named_modules():
        kind = mode_dependent_kind(module)
        if kind is None:
            continue
        if training is not None and module.training is not training:
            continue
        found.append((path.replace("_orig_mod.", "") or "(root)", kind))  # torch.compile's wrapper
    return found


def describe_modules(modules: list[tuple[str, str]], prefix: str) -> str:
    """``model.drop`` (dropout), ``model.bn`` (batch norm) and 3 more."""
    shown = [f"`{prefix}.{path}` ({kind})" if path != "(root)" else f"`{prefix}` ({kind})"
             for path, kind in modules[:MAX_NAMED]]
    more = len(modules) - len(shown)
    text = ", ".join(shown)
    return text + (f" and {more} more" if more > 0 else "")


def model_prefix(info: Any) -> str:
    names = getattr(info, "names", None) or []
    return names[-1] if names else "model"


class TrainedModels:
    """Which watched root models hold parameters that an optimizer steps.

    Decided while model and optimizer are alive and remembered, so a model that was garbage-collected
    (``fit(make_model(), ...)``) still counts with the evaluation steps its ``ModelInfo`` noted. Until
    an optimizer has stepped, every model counts.
    """

    def __init__(self, run: Any):
        self.run = run
        self._seen: tuple[int, int] = (-1, -1)
        self._trained: dict[int, bool] = {}  # id(ModelInfo) -> trained

    def infos(self, alive: bool = True) -> list[Any]:
        """ModelInfos of trained models (only those still alive, unless ``alive=False``)."""
        run = self.run
        key = (len(run.loop.optimizers), len(run.loop.models))
        if key != self._seen:
            self._seen = key
            self._update()
        out = []
        for info in list(run.loop.models.values()):
            if not self._trained.get(id(info), True):
                continue
            if alive and info.ref() is None:
                continue
            out.append(info)
        return out

    def stepped_by(self, optimizer: Any) -> list[Any]:
        """Live trained models with parameters in ``optimizer`` (all live trained models if it is None)."""
        infos = self.infos()
        if optimizer is None:
            return infos
        params = {id(p) for group in optimizer.param_groups for p in group["params"]}
        out = []
        for info in infos:
            module = info.ref()
            if module is not None and any(id(p) in params for p in module.parameters()):
                out.append(info)
        return out

    def _update(self) -> None:
        params: set[int] = set()
        for opt in list(self.run.loop.optimizers.values()):
            optimizer = opt.ref()
            if optimizer is None:
                continue
            for group in optimizer.param_groups:
                params.update(id(p) for p in group["params"])
        if not params:
            return
        for info in list(self.run.loop.models.values()):
            module = info.ref()
            if module is not None:
                self._trained[id(info)] = any(id(p) in params for p in module.parameters())


def at_step(check: Any, step: int, fn: Any) -> bool:
    """Schedule ``fn`` at ``step`` through the training probe's step alarms, guarded like a handler:
    an exception disables ``check`` (unsubscribed, no ``finish``) and becomes an internal-error finding."""
    run = check.run
    schedule = run.loop.at_step
    component = f"check:{check.name}"

    def guarded() -> None:
        if run.is_disabled(component):
            return
        try:
            fn()
        except Exception as exc:
            run.bus.unsubscribe(check)
            run.internal_error(component, exc)

    schedule(step, guarded)
    return True


def held_out_data(run: Any, frames: list, named: dict[str, Any] | None = None) -> list[str]:
    """Names of held-out data in the user's frames (and among ``named`` objects: what a framework's
    trainer holds, ``eval_dataset``): a DataLoader never iterated, or a dataset that no iterated
    loader serves (not its dataset, nor a base under its Subset/ConcatDataset), such as the
    validation part of a ``random_split``. Empty when the run has nothing to evaluate on (a GAN)."""
    from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

    served: set[int] = set()
    pending = [info.dataset_ref() for info in run.loop.loaders.values()]
    while pending:
        dataset = pending.pop()
        if dataset is None or id(dataset) in served:
            continue
        served.add(id(dataset))
        if isinstance(dataset, Subset):
            pending.append(dataset.dataset)
        elif isinstance(dataset, ConcatDataset):
            pending.extend(dataset.datasets)
    iterated = {id(info.ref()) for info in run.loop.loaders.values() if info.ref() is not None}
    found: dict[str, None] = {}
    namespaces = [frame.namespace for frame in frames] + [named or {}]
    for namespace in namespaces:
        for name, value in list(namespace.items()):
            if name.startswith("_"):
                continue
            if isinstance(value, DataLoader):
                if id(value) not in iterated and id(value.dataset) not in served:
                    found[name] = None
            elif isinstance(value, Dataset) and id(value) not in served:
                found[name] = None
    return list(found)
