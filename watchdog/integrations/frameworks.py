"""The training frameworks watchdog knows, read without importing them: how to recognise their trainer,
what its settings say about evaluation, what it calls its loaders, and what it holds out.

One ``Framework`` per framework (``LIGHTNING``, ``HUGGING_FACE``). Everything here reads attributes of
objects the user's program already made; nothing imports Lightning, ``transformers`` or torch, and
nothing calls the user's code (no ``val_dataloader()`` is built to look at it).

**The evaluation cadence a trainer is set to** (:meth:`Framework.settings`, ``TrainerSettings.eval_every``,
in epochs; the one rule, read by the cadence check through the ``framework_trainer`` event):

- Lightning: ``check_val_every_n_epoch=k`` → every ``k`` epochs (whatever ``val_check_interval`` does
  inside those epochs); ``check_val_every_n_epoch=None`` with an integer ``val_check_interval=n``
  (validation every ``n`` training batches, across epochs) → every ``ceil(n / batches per epoch)``
  epochs; a time-based ``val_check_interval`` → not in epochs (unknown). No ``validation_step`` or
  ``limit_val_batches=0`` → no evaluation configured.
- Hugging Face ``Trainer``: ``eval_strategy="epoch"`` → every epoch; ``"steps"`` with ``eval_steps=n``
  → every ``ceil(n / optimizer steps per epoch)`` epochs; ``"no"`` (the default), or no
  ``eval_dataset`` → no evaluation configured.

Between ``k`` consecutive evaluations ``k - 1`` epochs at most go unevaluated, so a gap of ``k`` epochs
is a missing evaluation, as with ``watchdog.watch(eval_every=k)``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..core.frames import is_framework_file, release_locals_snapshot

MAX_DEPTH = 96  # frames walked up from a DataLoader pass start to find a trainer


@dataclass
class TrainerSettings:
    """What a trainer is set to do, as the ``framework_trainer`` event carries it."""

    framework: str  # "lightning" | "huggingface"
    display: str  # "Lightning" | "the Hugging Face Trainer"
    trainer: str  # the trainer's class name
    version: str | None
    evaluates: bool  # whether evaluation during training is configured at all
    eval_every: int | None  # the evaluation cadence in epochs (None: not configured, or not in epochs)
    eval_setting: str | None  # the setting it comes from: "check_val_every_n_epoch=2"
    settings: dict[str, Any] = field(default_factory=dict)  # the settings read (JSON-safe)
    resumed_from: dict[str, Any] | None = None  # the checkpoint the weights came from, when training restarts
    held_out: dict[str, Any] = field(default_factory=dict)  # held-out data the trainer holds, by name

    def data(self) -> dict[str, Any]:
        return {"framework": self.framework, "display": self.display, "trainer": self.trainer,
                "version": self.version, "evaluates": self.evaluates, "eval_every": self.eval_every,
                "eval_setting": self.eval_setting, "settings": self.settings, "resumed_from": self.resumed_from,
                "held_out": sorted(self.held_out)}


def _classes(obj: Any) -> list[tuple[str, str]]:
    try:
        return [(getattr(k, "__module__", ""), k.__name__) for k in type(obj).__mro__]
    except Exception:
        return []


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _version(package: str) -> str | None:
    module = sys.modules.get(package)
    return getattr(module, "__version__", None) if module is not None else None


class Framework:
    """One training framework: its trainer's class, the frames that hold it, its settings and names."""

    name = ""
    display = ""
    trainer_classes: tuple[tuple[str, str], ...] = ()  # (module, class name) of the trainer's base class
    trainer_file = ""  # the file (suffix) whose methods have the trainer as ``self``
    packages: tuple[str, ...] = ()  # top-level modules whose presence means the framework may run
    callback_module = ""  # watchdog's callback for it
    eval_fix = ""  # how this framework's users evaluate every epoch (eval/missing-epochs' fix)

    def imported(self) -> bool:
        return any(package in sys.modules for package in self.packages)

    def is_trainer(self, obj: Any) -> bool:
        return any(pair in self.trainer_classes for pair in _classes(obj))

    def trainer_in(self, frame: types.FrameType) -> Any:
        """The trainer that ``frame`` (one of the trainer's own methods) runs as ``self``, or None."""
        code = frame.f_code
        if not code.co_filename.endswith(self.trainer_file) or not code.co_varnames[:1] == ("self",):
            return None
        namespace = frame.f_locals
        try:
            candidate = namespace.get("self")
        finally:
            release_locals_snapshot(frame)
        return candidate if self.is_trainer(candidate) else None

    def settings(self, trainer: Any, train_batches: int | None = None) -> TrainerSettings:
        raise NotImplementedError

    def loader_name(self, trainer: Any, loader: Any) -> str | None:
        """The framework's name for ``loader`` (``train_dataloader``, ``eval_dataset``), or None."""
        raise NotImplementedError

    def model(self, trainer: Any) -> Any:
        """The model the trainer trains (watched for its forwards like a model found in the user's frames)."""
        raise NotImplementedError

    def training(self, trainer: Any) -> bool:
        """Whether the trainer is training now (``fit`` / ``train()``), not only evaluating or predicting."""
        raise NotImplementedError

    def callbacks(self, trainer: Any) -> list[Any]:
        raise NotImplementedError

    def add_callback(self, trainer: Any, callback: Any) -> None:
        raise NotImplementedError

    def remove_callback(self, trainer: Any, callback: Any) -> None:
        raise NotImplementedError


def _named_in(iterables: Any, loader: Any, name: str) -> str | None:
    """``name`` if ``iterables`` is ``loader``; ``name[i]`` / ``name['key']`` for one inside a list,
    tuple or dict (Lightning's several loaders); None when it is not there."""
    if iterables is loader:
        return name
    items: Iterator[tuple[Any, Any]]
    if isinstance(iterables, dict):
        items = iter(iterables.items())
    elif isinstance(iterables, (list, tuple)):
        items = enumerate(iterables)
    else:
        return None
    for key, value in items:
        found = _named_in(value, loader, f"{name}[{key!r}]")
        if found is not None:
            return found
    return None


def _first_definer(obj: Any, method: str) -> str:
    """The module of the first class in ``obj``'s MRO that defines ``method``."""
    for klass in type(obj).__mro__:
        if method in vars(klass):
            return getattr(klass, "__module__", "") or ""
    return ""


class Lightning(Framework):
    name = "lightning"
    display = "Lightning"
    trainer_classes = (("pytorch_lightning.trainer.trainer", "Trainer"), ("lightning.pytorch.trainer.trainer", "Trainer"))
    trainer_file = os.path.join("trainer", "trainer.py")
    packages = ("pytorch_lightning", "lightning")
    callback_module = "watchdog.integrations.lightning"
    eval_fix = ("Give the LightningModule a `validation_step` and pass the held-out data to "
                "`trainer.fit(model, train_dataloaders=..., val_dataloaders=val_loader)`: Lightning validates "
                "after every epoch (`check_val_every_n_epoch=N`: every N epochs).")

    def settings(self, trainer: Any, train_batches: int | None = None) -> TrainerSettings:
        every_n = getattr(trainer, "check_val_every_n_epoch", 1)
        interval = getattr(trainer, "val_check_interval", 1.0)
        time_based = getattr(trainer, "_val_check_time_interval", None) is not None
        limit_val = getattr(trainer, "limit_val_batches", 1.0)
        module = getattr(trainer, "lightning_module", None)
        has_step = module is not None and not _first_definer(module, "validation_step").startswith(
            ("pytorch_lightning.", "lightning."))
        batches = _finite_int(getattr(getattr(trainer, "fit_loop", None), "max_batches", None)) or train_batches
        evaluates = has_step and limit_val != 0
        eval_every: int | None = None
        setting: str | None = None
        if not evaluates:
            setting = "limit_val_batches=0" if has_step else "no validation_step"
        elif time_based:
            setting = f"val_check_interval={interval!r} (time-based)"
        elif every_n is None and isinstance(interval, int) and batches:
            eval_every = max(1, math.ceil(interval / batches))
            setting = f"val_check_interval={interval} batches with check_val_every_n_epoch=None ({batches} batches per epoch)"
        elif isinstance(every_n, int) and every_n >= 1:
            eval_every = every_n
            setting = f"check_val_every_n_epoch={every_n}"
        package = type(trainer).__module__.split(".")[0]
        return TrainerSettings(
            framework=self.name, display=self.display, trainer=type(trainer).__name__,
            version=_version("pytorch_lightning" if package == "pytorch_lightning" else "lightning"),
            evaluates=evaluates, eval_every=eval_every, eval_setting=setting,
            settings={key: _json_safe(value) for key, value in (
                ("check_val_every_n_epoch", every_n), ("val_check_interval", interval),
                ("limit_val_batches", limit_val), ("max_epochs", getattr(trainer, "max_epochs", None)),
                ("train_batches", batches), ("validation_step", has_step))},
            held_out=self._held_out(trainer, module))

    @staticmethod
    def _held_out(trainer: Any, module: Any) -> dict[str, Any]:
        """The datasets and loaders the DataModule and the LightningModule hold (``datamodule.val_ds``):
        held-out data when no evaluation ever iterates them."""
        out: dict[str, Any] = {}
        for prefix, owner in (("datamodule", getattr(trainer, "datamodule", None)), ("model", module)):
            attrs = getattr(owner, "__dict__", None) if owner is not None else None
            if isinstance(attrs, dict):
                for name, value in list(attrs.items()):
                    if not name.startswith("_") and _is_data(value):
                        out[f"{prefix}.{name}"] = value
        return out

    def loader_name(self, trainer: Any, loader: Any) -> str | None:
        for attribute, name in (("train_dataloader", "train_dataloader"), ("val_dataloaders", "val_dataloader"),
                                ("test_dataloaders", "test_dataloader"), ("predict_dataloaders", "predict_dataloader")):
            try:
                iterables = getattr(trainer, attribute, None)
            except Exception:  # a loop not set up yet
                continue
            found = _named_in(iterables, loader, name)
            if found is not None:
                return found
        return None

    def model(self, trainer: Any) -> Any:
        try:
            return trainer.lightning_module
        except Exception:
            return None

    def training(self, trainer: Any) -> bool:
        fn = getattr(getattr(trainer, "state", None), "fn", None)
        return str(getattr(fn, "value", fn)) == "fit"

    def callbacks(self, trainer: Any) -> list[Any]:
        return list(getattr(trainer, "callbacks", []) or [])

    def add_callback(self, trainer: Any, callback: Any) -> None:
        trainer.callbacks.append(callback)

    def remove_callback(self, trainer: Any, callback: Any) -> None:
        if callback in trainer.callbacks:
            trainer.callbacks.remove(callback)


class HuggingFace(Framework):
    name = "huggingface"
    display = "the Hugging Face Trainer"
    trainer_classes = (("transformers.trainer", "Trainer"),)
    trainer_file = os.path.join("transformers", "trainer.py")
    packages = ("transformers",)
    callback_module = "watchdog.integrations.huggingface"
    eval_fix = ("Pass `eval_dataset=` to the Trainer and set `eval_strategy=\"epoch\"` in its `TrainingArguments` "
                "(`\"steps\"` with `eval_steps=N`: every N optimizer steps).")

    def settings(self, trainer: Any, train_batches: int | None = None) -> TrainerSettings:
        args = getattr(trainer, "args", None)
        state = getattr(trainer, "state", None)
        strategy = _strategy(getattr(args, "eval_strategy", None) or getattr(args, "evaluation_strategy", "no"))
        eval_steps = getattr(state, "eval_steps", None) if strategy == "steps" else None
        if strategy == "steps" and not eval_steps:
            eval_steps = getattr(args, "eval_steps", None) or getattr(args, "logging_steps", None)
        accumulation = max(1, int(getattr(args, "gradient_accumulation_steps", 1) or 1))
        steps_per_epoch = None
        if train_batches:
            steps_per_epoch = max(1, train_batches // accumulation)
        elif (max_steps := getattr(state, "max_steps", 0)) and (epochs := getattr(state, "num_train_epochs", 0)):
            steps_per_epoch = max(1, math.ceil(max_steps / epochs))
        eval_dataset = getattr(trainer, "eval_dataset", None)
        evaluates = strategy != "no" and eval_dataset is not None
        eval_every: int | None = None
        setting = f'eval_strategy="{strategy}"'
        if evaluates and strategy == "epoch":
            eval_every = 1
        elif evaluates and strategy == "steps" and eval_steps and steps_per_epoch:
            eval_every = max(1, math.ceil(float(eval_steps) / steps_per_epoch))
            setting += f", eval_steps={_json_safe(eval_steps)} ({steps_per_epoch} optimizer steps per epoch)"
        elif strategy != "no":
            setting += " and no eval_dataset"
        held_out = ({f"eval_dataset[{k!r}]": v for k, v in eval_dataset.items()} if isinstance(eval_dataset, dict)
                    else {"eval_dataset": eval_dataset} if eval_dataset is not None else {})
        return TrainerSettings(
            framework=self.name, display=self.display, trainer=type(trainer).__name__,
            version=_version("transformers"), evaluates=evaluates, eval_every=eval_every, eval_setting=setting,
            settings={key: _json_safe(value) for key, value in (
                ("eval_strategy", strategy), ("eval_steps", eval_steps), ("steps_per_epoch", steps_per_epoch),
                ("save_strategy", _strategy(getattr(args, "save_strategy", None))),
                ("save_only_model", getattr(args, "save_only_model", None)),
                ("num_train_epochs", getattr(state, "num_train_epochs", None)),
                ("max_steps", getattr(state, "max_steps", None)))},
            resumed_from=self._restarted_from_checkpoint(trainer, state),
            held_out=held_out)

    @staticmethod
    def _restarted_from_checkpoint(trainer: Any, state: Any) -> dict[str, Any] | None:
        """The Trainer checkpoint the model's weights were loaded from (``from_pretrained("out/checkpoint-500")``)
        when training starts over from step 0 (no ``resume_from_checkpoint``): what it holds, from its
        file names and ``trainer_state.json`` (no tensor is read)."""
        if getattr(state, "global_step", 0):
            return None  # resumed: the Trainer restored its state
        model = getattr(trainer, "model", None)
        path = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
        if not isinstance(path, str) or not path or not os.path.isdir(path):
            return None
        state_file = os.path.join(path, "trainer_state.json")
        if not os.path.isfile(state_file):
            return None
        try:
            with open(state_file, encoding="utf-8") as fh:
                saved = json.load(fh)
        except (OSError, ValueError):
            saved = {}
        files = sorted(name for name in os.listdir(path)
                       if name in ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth"))
        return {"path": os.path.abspath(path), "files": files, "global_step": saved.get("global_step"),
                "epoch": _json_safe(saved.get("epoch"))}

    def loader_name(self, trainer: Any, loader: Any) -> str | None:
        dataset = getattr(loader, "dataset", None)
        if dataset is None:
            return None
        if dataset is getattr(trainer, "train_dataset", None):
            return "train_dataset"
        eval_dataset = getattr(trainer, "eval_dataset", None)
        if dataset is eval_dataset:
            return "eval_dataset"
        if isinstance(eval_dataset, dict):
            for key, value in eval_dataset.items():
                if value is dataset:
                    return f"eval_dataset[{key!r}]"
        return None

    def model(self, trainer: Any) -> Any:
        return getattr(trainer, "model", None)

    def training(self, trainer: Any) -> bool:
        return bool(getattr(trainer, "is_in_train", False))

    def callbacks(self, trainer: Any) -> list[Any]:
        handler = getattr(trainer, "callback_handler", None)
        return list(getattr(handler, "callbacks", []) or [])

    def add_callback(self, trainer: Any, callback: Any) -> None:
        trainer.add_callback(callback)

    def remove_callback(self, trainer: Any, callback: Any) -> None:
        if callback in self.callbacks(trainer):
            trainer.remove_callback(callback)


def _strategy(value: Any) -> str:
    value = getattr(value, "value", value)
    return str(value) if value is not None else "no"


def _finite_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, float) and math.isfinite(value) and value > 0:
        return int(value)
    return None


def _is_data(value: Any) -> bool:
    """A torch ``Dataset`` or ``DataLoader`` (checked by class, without importing torch)."""
    return any(module.startswith("torch.utils.data") and name in ("Dataset", "DataLoader")
               for module, name in _classes(value))


LIGHTNING = Lightning()
HUGGING_FACE = HuggingFace()
FRAMEWORKS: tuple[Framework, ...] = (LIGHTNING, HUGGING_FACE)


def framework_of(trainer: Any) -> Framework | None:
    """The framework whose trainer ``trainer`` is, or None."""
    return next((framework for framework in FRAMEWORKS if framework.is_trainer(trainer)), None)


def find_trainer(frame: types.FrameType | None) -> tuple[Framework, Any] | None:
    """The innermost framework trainer on the stack from ``frame`` outward (the one running the
    DataLoader pass that starts), or None. Costs nothing when no framework is imported; otherwise
    reads the variables of the trainer's own frames only."""
    frameworks = [framework for framework in FRAMEWORKS if framework.imported()]
    if not frameworks:
        return None
    depth = 0
    while frame is not None and depth < MAX_DEPTH:
        if is_framework_file(frame.f_code.co_filename):
            for framework in frameworks:
                trainer = framework.trainer_in(frame)
                if trainer is not None:
                    return framework, trainer
        frame = frame.f_back
        depth += 1
    return None
