"""Checkpoint probe: what is saved, what is loaded, what state is restored.

Patches, while a run is watched:

* ``torch.save`` → event ``checkpoint_saved`` after the real save returns: where it went (a path,
  a ``BytesIO`` with the byte range of this save, an open file) and, as refs, the saved object, a
  ``source()`` that gives the written bytes (or the path, or why they cannot be read back) and the
  schedulers / grad scalers found in the caller's frames. Checks run synchronously in the emit,
  before training continues, so the saved object is still exactly what was written.
* ``torch.load`` → ``checkpoint_loaded`` (only for results that hold training state; capped).
* ``load_state_dict`` of ``Optimizer``, every ``LRScheduler`` class that defines one,
  ``torch.amp.GradScaler`` and ``nn.Module`` → ``state_loaded`` (outermost call only).
* ``LRScheduler.step`` (and overrides) and ``GradScaler.update``: first-sight registration into
  its ``schedulers`` / ``scalers`` registries (a dict lookup per call after the first), event
  ``scheduler_seen`` / ``scaler_seen``.
* After a load that holds training state, a global optimizer post-step hook is armed for a few
  steps: the first step of each optimizer after the load becomes ``optimizer_step_after_load``.
  Then it is removed, so steady-state training pays nothing.

Behaviour and return values are exactly those of the unpatched functions; the user's exceptions
pass through unchanged; bookkeeping errors become ``run.internal_error("probe:checkpoint", ...)``.
Only the process that installed the probe reports (forked DataLoader workers pass straight through).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks as _global_post_hooks
from torch.optim.optimizer import register_optimizer_step_post_hook

from ..core.frames import objects_in_frames, user_frames
from .roundtrip import Unverifiable
from .statetree import inventory

if TYPE_CHECKING:
    from ..core.run import Run

ARMED_STEPS = 64  # optimizer steps watched after a load before the post-step hook is removed
MAX_LOAD_EVENTS = 200  # torch.load in a dataset's __getitem__ must not flood the log


def _all_subclasses(cls: type) -> list[type]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(c for c in _all_subclasses(sub) if c not in out)
    return out


def _scheduler_classes() -> list[type]:
    classes = _all_subclasses(torch.optim.lr_scheduler.LRScheduler)
    plateau = getattr(torch.optim.lr_scheduler, "ReduceLROnPlateau", None)
    if plateau is not None and plateau not in classes:
        classes.append(plateau)
    return classes


def _destination(f: Any) -> dict[str, Any]:
    """Where torch.save is about to write: kind, absolute path, start offset. Never moves `f`."""
    if isinstance(f, (str, bytes, os.PathLike)):
        path = os.fsdecode(os.fspath(f))
        return {"target": "path", "path": os.path.abspath(path), "start": 0}
    if isinstance(f, io.BytesIO):
        return {"target": "bytesio", "path": None, "start": f.tell()}
    name = getattr(f, "name", None)
    start = None
    try:
        start = f.tell()
    except Exception:  # noqa: BLE001 - unseekable streams
        start = None
    if isinstance(name, str) and os.path.isfile(name):
        return {"target": "file", "path": os.path.abspath(name), "start": start}
    return {"target": "stream", "path": None, "start": start, "type": type(f).__name__}


class CheckpointProbe:
    name = "checkpoint"

    def install(self, run: "Run") -> None:
        self.run = run
        self.pid = os.getpid()
        self._local = threading.local()
        self.load_events = 0
        self.load_events_dropped = 0
        self._hook_handle: Any = None
        self._armed = False
        self._steps_after_load = 0
        self._seen_after_load: set[int] = set()
        self.schedulers: dict[int, Any] = {}  # id -> weakref, LR schedulers seen stepping or near a save
        self.scalers: dict[int, Any] = {}  # id -> weakref, GradScalers seen updating or near a save

        patches = run.patches
        patches.setattr(torch, "save", self._wrap_save(torch.save))
        patches.setattr(torch, "load", self._wrap_load(torch.load))

        patches.setattr(
            torch.optim.Optimizer,
            "load_state_dict",
            self._wrap_load_state_dict(torch.optim.Optimizer.__dict__["load_state_dict"], "optimizer"),
        )
        for cls in _scheduler_classes():
            if "load_state_dict" in cls.__dict__:
                patches.setattr(cls, "load_state_dict", self._wrap_load_state_dict(cls.__dict__["load_state_dict"], "scheduler"))
            if "step" in cls.__dict__:
                patches.setattr(cls, "step", self._wrap_first_sight(cls.__dict__["step"], self.schedulers, "scheduler_seen"))
        scaler_cls = torch.amp.GradScaler
        patches.setattr(scaler_cls, "load_state_dict", self._wrap_load_state_dict(scaler_cls.__dict__["load_state_dict"], "scaler"))
        patches.setattr(scaler_cls, "update", self._wrap_first_sight(scaler_cls.__dict__["update"], self.scalers, "scaler_seen"))
        patches.setattr(
            torch.nn.Module,
            "load_state_dict",
            self._wrap_load_state_dict(torch.nn.Module.__dict__["load_state_dict"], "module"),
        )
        patches.add_undo(self._disarm, "checkpoint probe: post-step hook after a load")

    # -- helpers ------------------------------------------------------------------------------------
    def _active(self) -> bool:
        return os.getpid() == self.pid and self.run.status == "running" and not self.run.is_disabled("probe:checkpoint")

    def _failed(self, exc: BaseException) -> None:
        self.run.internal_error("probe:checkpoint", exc)

    def register(self, registry: dict[int, Any], obj: Any, kind: str) -> bool:
        """First sight of a scheduler / scaler; True when it is new."""
        known = registry.get(id(obj))
        if known is not None and known() is obj:
            return False
        registry[id(obj)] = weakref.ref(obj)
        data: dict[str, Any] = {"type": type(obj).__name__, "id": id(obj)}
        if kind == "scheduler_seen":
            data["last_epoch"] = getattr(obj, "last_epoch", None)
            last = getattr(obj, "_last_lr", None)
            data["lrs"] = [float(x) for x in last] if isinstance(last, (list, tuple)) else None
        else:
            scale = getattr(obj, "_scale", None)
            data["scale"] = float(scale.reshape(-1)[0]) if isinstance(scale, torch.Tensor) and scale.device.type == "cpu" else None
        self.run.emit(kind, data, refs={"object": obj})
        return True

    def nearby(self, frames: list | None = None) -> list[Any]:
        """Schedulers and grad scalers held by the user's frames (registered on the way)."""
        frames = frames if frames is not None else user_frames(6)
        found = objects_in_frames((torch.optim.lr_scheduler.LRScheduler, torch.amp.GradScaler), frames)
        out = []
        for obj, _name in found.values():
            if isinstance(obj, torch.amp.GradScaler):
                self.register(self.scalers, obj, "scaler_seen")
            else:
                self.register(self.schedulers, obj, "scheduler_seen")
            out.append(obj)
        return out

    # -- torch.save ---------------------------------------------------------------------------------
    def _wrap_save(self, original: Callable) -> Callable:
        probe = self

        @functools.wraps(original)
        def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
            dest = None
            try:
                if probe._active() and not getattr(probe._local, "busy", False):
                    dest = _destination(f)
            except Exception as exc:  # noqa: BLE001
                probe._failed(exc)
            result = original(obj, f, *args, **kwargs)
            if dest is not None:
                probe._local.busy = True
                try:
                    probe._saved(obj, f, dest)
                except Exception as exc:  # noqa: BLE001
                    probe._failed(exc)
                finally:
                    probe._local.busy = False
            return result

        return save

    def _saved(self, obj: Any, f: Any, dest: dict[str, Any]) -> None:
        end = None
        if dest["target"] in ("bytesio", "file", "stream"):
            try:
                end = f.tell()
            except Exception:  # noqa: BLE001
                end = None
        start = dest.get("start")
        size = None
        if dest["target"] == "path":
            try:
                size = os.path.getsize(dest["path"])
            except OSError:
                size = None
        elif start is not None and end is not None:
            size = end - start

        def source() -> Any:
            """The bytes of this save (BytesIO), the file's path, or Unverifiable(why)."""
            target = dest["target"]
            if target == "path":
                return dest["path"]
            if target == "bytesio":
                if start is None or end is None:
                    return Unverifiable("the BytesIO position could not be read")
                return f.getvalue()[start:end]
            if target == "file":
                if start is None or end is None:
                    return Unverifiable(f"{type(f).__name__} {dest['path']!r} is not seekable")
                try:
                    f.flush()  # what torch.save wrote reaches the file; the position is unchanged
                except Exception as exc:  # noqa: BLE001
                    return Unverifiable(f"could not flush {dest['path']!r}: {exc}")
                with open(dest["path"], "rb") as raw:
                    raw.seek(start)
                    data = raw.read(end - start)
                if len(data) != end - start:
                    return Unverifiable(f"{dest['path']!r} holds fewer bytes than were written (not flushed?)")
                return data
            return Unverifiable(f"torch.save wrote into a {dest.get('type', 'stream')} object that cannot be read back")

        frames = user_frames(6)
        nearby = self.nearby(frames)
        where = frames[0].where if frames else None
        try:
            inv = inventory(obj)  # what the save holds, once: the event carries it, the check reuses it
            holds = inv.summary()
        except Exception:  # noqa: BLE001 - the check reports what it cannot read
            inv, holds = None, None
        self.run.emit(
            "checkpoint_saved",
            {
                "target": dest["target"],
                "path": dest["path"],
                "dir": os.path.dirname(dest["path"]) if dest["path"] else None,
                "bytes": size,
                "steps": self.run.loop.steps,
                "where": where,
                "thread": threading.current_thread().name,
                "main_thread": threading.current_thread() is threading.main_thread(),
                "holds": holds,
            },
            refs={"obj": obj, "source": source, "nearby": nearby, "inventory": inv},
        )

    # -- torch.load ---------------------------------------------------------------------------------
    def _wrap_load(self, original: Callable) -> Callable:
        probe = self

        @functools.wraps(original)
        def load(f: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(f, *args, **kwargs)
            try:
                if probe._active() and not getattr(probe._local, "busy", False):
                    probe._local.busy = True
                    try:
                        probe._loaded(f, result)
                    finally:
                        probe._local.busy = False
            except Exception as exc:  # noqa: BLE001
                probe._failed(exc)
            return result

        return load

    def _loaded(self, f: Any, result: Any) -> None:
        inv = inventory(result)
        if not (inv.is_checkpoint or inv.counters):
            return
        if self.load_events >= MAX_LOAD_EVENTS:
            self.load_events_dropped += 1
            return
        self.load_events += 1
        path = None
        if isinstance(f, (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(os.fspath(f)))
        else:
            name = getattr(f, "name", None)
            if isinstance(name, str) and os.path.isfile(name):
                path = os.path.abspath(name)
        frames = user_frames(6)
        self.nearby(frames)
        self.run.emit(
            "checkpoint_loaded",
            {"path": path, "target": "path" if path else type(f).__name__, "steps": self.run.loop.steps,
             "where": frames[0].where if frames else None, "holds": inv.summary()},
            refs={"obj": result, "inventory": inv},
        )
        if inv.optimizers or inv.schedulers or inv.scalers or inv.counters or inv.weights:
            self._arm()

    # -- load_state_dict ----------------------------------------------------------------------------
    def _wrap_load_state_dict(self, original: Callable, target: str) -> Callable:
        probe = self

        @functools.wraps(original)
        def load_state_dict(obj: Any, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
            local = probe._local
            depth = getattr(local, "lsd_depth", 0)
            local.lsd_depth = depth + 1
            try:
                result = original(obj, state_dict, *args, **kwargs)
            finally:
                local.lsd_depth = depth
            try:
                if depth == 0 and probe._active() and not getattr(local, "busy", False):
                    probe._state_loaded(obj, state_dict, target)
            except Exception as exc:  # noqa: BLE001
                probe._failed(exc)
            return result

        return load_state_dict

    def _state_loaded(self, obj: Any, state_dict: Any, target: str) -> None:
        data: dict[str, Any] = {"target": target, "type": type(obj).__name__, "id": id(obj), "steps": self.run.loop.steps}
        if target == "optimizer":
            state = getattr(obj, "state", {})
            data["params_with_state"] = sum(1 for v in state.values() if v)
            data["lrs"] = [float(g["lr"]) for g in obj.param_groups if isinstance(g.get("lr"), (int, float))]
        elif target == "scheduler":
            self.register(self.schedulers, obj, "scheduler_seen")
            data["last_epoch"] = getattr(obj, "last_epoch", None)
        elif target == "scaler":
            self.register(self.scalers, obj, "scaler_seen")
        self.run.emit("state_loaded", data, refs={"target": obj, "state": state_dict})

    # -- first sight of schedulers and scalers -------------------------------------------------------
    def _wrap_first_sight(self, original: Callable, registry: dict[int, Any], kind: str) -> Callable:
        probe = self

        @functools.wraps(original)
        def method(obj: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(obj, *args, **kwargs)
            try:
                known = registry.get(id(obj))
                if (known is None or known() is not obj) and probe._active():
                    probe.register(registry, obj, kind)
            except Exception as exc:  # noqa: BLE001
                probe._failed(exc)
            return result

        return method

    # -- the first optimizer steps after a load -----------------------------------------------------
    def _arm(self) -> None:
        self._steps_after_load = 0
        self._seen_after_load = set()
        self._armed = True
        if self._hook_handle is None:
            self._hook_handle = register_optimizer_step_post_hook(self._after_step)

    def _disarm(self) -> None:
        self._armed = False
        handle, self._hook_handle = self._hook_handle, None
        if handle is not None:
            handle.remove()

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        """The post-step hook torch calls while armed: a guard around ``step_after_load``."""
        if not self._armed:
            return  # disarmed; the hook is removed when that is safe
        try:
            done = self.step_after_load(optimizer)
        except Exception as exc:  # noqa: BLE001
            done = True
            self._failed(exc)
        if done:
            self._armed = False
            # torch is iterating the global hooks right now: removing any entry but the last would
            # make the user's optimizer.step() raise. Otherwise the hook stays, idle, until the run ends.
            with contextlib.suppress(Exception):
                if self._hook_handle is not None and next(reversed(_global_post_hooks), None) == self._hook_handle.id:
                    self._disarm()

    def step_after_load(self, optimizer: Any) -> bool:
        """One optimizer step after a load; True when the hook has seen enough steps."""
        if not self._active():
            return True
        self._steps_after_load += 1
        if id(optimizer) not in self._seen_after_load:
            self._seen_after_load.add(id(optimizer))
            frames = user_frames(6)
            nearby = self.nearby(frames)
            self.run.emit(
                "optimizer_step_after_load",
                {"type": type(optimizer).__name__, "id": id(optimizer), "steps": self.run.loop.steps,
                 "lrs": [float(g["lr"]) for g in optimizer.param_groups if isinstance(g.get("lr"), (int, float))],
                 "where": frames[0].where if frames else None},
                refs={"optimizer": optimizer, "nearby": nearby},
            )
        return self._steps_after_load >= ARMED_STEPS

    def finish(self) -> None:
        self._disarm()
