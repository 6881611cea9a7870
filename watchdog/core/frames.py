"""The user's frames, and names for the user's objects found in them: ``val_loader``, ``model``,
``self.train_ds``.

Two walks up the calling thread's stack, both skipping the frames of torch, of watchdog itself and
of the import machinery:

- :func:`user_frames`: the few innermost frames of the user's own code (library frames only when
  there are none), each with a *copy* of its variables. Boundaries (a DataLoader pass starts, a
  checkpoint is saved) name objects from these.
- :func:`stack_frames`: every frame outside watchdog, torch and the test runner, innermost first,
  each keeping the live frame: its variables are read when asked for (the memory census's culprit
  walk), and :func:`release_locals_snapshots` drops what reading them left behind.

**Framework frames** (:func:`is_framework_file`): the frames of the training frameworks that call
the user's code (Lightning, Hugging Face ``transformers``, ``accelerate``). They are library frames
like any installed package's, and more: they are never the place a finding points at and never
name what the user's code holds (``model`` in Lightning's ``_run()`` is the user's LightningModule,
which the user's code calls ``self``); the objects they hold (the trainer) can still be found.

Runs only at boundaries, never per step.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import types
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import torch

_SKIP_DIRS = tuple(
    os.path.dirname(os.path.abspath(m.__file__)) + os.sep for m in (torch, sys.modules[__name__.partition(".")[0]])
)
_SKIP_FILES = ("<frozen ", "runpy.py", os.sep + "contextlib.py", os.sep + "threading.py")


def is_user_file(filename: str) -> bool:
    if filename.startswith(_SKIP_DIRS) or filename.startswith("<frozen "):
        return False
    return not filename.endswith(_SKIP_FILES)


@dataclass(eq=False)
class UserFrame:
    """One frame of the user's code: where it stands, and its variables.

    Built from the frame's variables as read once (``namespace_copy``, :func:`user_frames`: a copy of
    a function's locals, a module's globals themselves) or from the live frame (``frame``,
    :func:`stack_frames`), whose variables are read each time :attr:`namespace` is asked for and
    never kept here: a kept locals snapshot would keep the locals' old values alive (before Python
    3.13) and could not be released.
    """

    function: str
    filename: str
    lineno: int
    namespace_copy: dict[str, Any] | None = field(default=None, repr=False)
    frame: types.FrameType | None = field(default=None, repr=False)

    @property
    def namespace(self) -> Mapping[str, Any]:
        """The frame's variables: the copy, else the live frame's ``f_locals`` (a snapshot dict
        before 3.13, a write-through proxy from 3.13 on), else nothing."""
        if self.namespace_copy is not None:
            return self.namespace_copy
        return self.frame.f_locals if self.frame is not None else {}

    @property
    def self_obj(self) -> Any:
        """The frame's ``self``, if it has one."""
        return self.namespace.get("self")

    @property
    def framework(self) -> bool:
        """A frame of a training framework (Lightning, transformers, accelerate): see the module docstring."""
        return is_framework_file(self.filename)

    @property
    def where(self) -> str:
        fn = "" if self.function == "<module>" else f" in {self.function}()"
        return f"{os.path.basename(self.filename)}:{self.lineno}{fn}"


_LIBRARY_DIRS = tuple(
    {os.path.join(p, "") for key in ("stdlib", "platstdlib", "purelib", "platlib")
     if (p := sysconfig.get_paths().get(key))}
)
_MAX_DEPTH = 64


def is_library_file(filename: str) -> bool:
    """Installed packages and the standard library (tqdm, Lightning, contextlib, ...)."""
    return filename.startswith(_LIBRARY_DIRS) or f"{os.sep}site-packages{os.sep}" in filename \
        or f"{os.sep}dist-packages{os.sep}" in filename


# The training frameworks that call the user's code (their frames are framework frames).
FRAMEWORK_PACKAGES = ("lightning", "pytorch_lightning", "lightning_fabric", "transformers", "accelerate")
_FRAMEWORK_MARKERS = tuple(f"{os.sep}{top}{os.sep}{package}{os.sep}" for top in ("site-packages", "dist-packages")
                           for package in FRAMEWORK_PACKAGES)


def is_framework_file(filename: str) -> bool:
    """A file of an installed training framework (``FRAMEWORK_PACKAGES``): Lightning's trainer and
    loops, Hugging Face's ``Trainer``, ``accelerate``'s data loaders."""
    return any(marker in filename for marker in _FRAMEWORK_MARKERS)


_CO_OPTIMIZED = 0x0001
_SNAPSHOT_REFS = 3  # the frame's own reference, ours, and getrefcount's argument


def release_locals_snapshot(frame: types.FrameType) -> None:
    """Empty the locals snapshot that reading ``f_locals`` leaves on a function frame.

    Before Python 3.13 that dict stays on the frame and holds the locals' values *as they were*
    (last epoch's batch, a tensor the user has since deleted) until the frame reads its locals
    again or returns. CPython refills it in full whenever it is read again, so emptying it changes
    nothing but what it keeps alive. A snapshot the program itself holds is left alone
    (``params = locals()`` is the same dict).
    """
    if sys.version_info >= (3, 13) or not frame.f_code.co_flags & _CO_OPTIMIZED:
        return  # 3.13+: a live proxy; module and class bodies: the namespace itself
    snapshot = frame.f_locals
    if type(snapshot) is dict and sys.getrefcount(snapshot) <= _SNAPSHOT_REFS:
        snapshot.clear()


def _namespace(frame: types.FrameType) -> dict[str, Any]:
    """A copy of the frame's variables that keeps nothing alive on the frame."""
    if not frame.f_code.co_flags & _CO_OPTIMIZED:
        return frame.f_globals if frame.f_code.co_name == "<module>" else frame.f_locals
    namespace = dict(frame.f_locals)
    release_locals_snapshot(frame)
    return namespace


def user_frames(limit: int = 4, start: types.FrameType | None = None) -> list[UserFrame]:
    """The innermost ``limit`` frames of the user's own code above the caller, innermost first.

    Frames of installed libraries (``for b in tqdm(loader)``) are passed over; only when no frame
    of the user's own code is found (a loop run by Lightning, say) are library frames used.
    """
    frame = start or sys._getframe(1)
    own: list[UserFrame] = []
    libraries: list[UserFrame] = []
    depth = 0
    while frame is not None and len(own) < limit and depth < _MAX_DEPTH:
        code = frame.f_code
        filename = code.co_filename
        if is_user_file(filename):
            target = libraries if is_library_file(filename) else own
            if target is own or len(libraries) < limit:
                namespace = _namespace(frame)
                target.append(UserFrame(code.co_name, filename, frame.f_lineno, namespace_copy=namespace))
        frame = frame.f_back
        depth += 1
    return own or libraries


def stack_frames(start: types.FrameType | None = None) -> list[UserFrame]:
    """Every frame of the calling thread from ``start`` (default: the caller's) outward that is not
    watchdog's, torch's, the interpreter's machinery's or the test runner's, innermost first, each
    keeping the live frame (variables read lazily; see :func:`release_locals_snapshots`).

    Other threads' frames are left alone: reading a running frame's locals from here could race
    with a tracer (debugger, coverage) in that thread."""
    out: list[UserFrame] = []
    f = start if start is not None else sys._getframe(1)
    while f is not None:
        filename = f.f_code.co_filename
        if not _is_internal_file(filename):
            out.append(UserFrame(f.f_code.co_name, filename, f.f_lineno, frame=f))
        f = f.f_back
    return out


def release_locals_snapshots(frames: Iterable[UserFrame]) -> None:
    """Release the locals snapshots that reading these frames' variables left behind (see
    :func:`release_locals_snapshot`); frames without a live frame are passed over.

    Only the calling thread's frames: no tracer of this thread sits between a refill and its
    write-back while we run."""
    for uf in frames:
        if uf.frame is not None:
            try:
                release_locals_snapshot(uf.frame)
            except Exception:
                pass


def _is_internal_file(filename: str) -> bool:
    if not is_user_file(filename):
        return True
    return os.path.basename(os.path.dirname(filename)) in ("_pytest", "pluggy")


def names_in_frames(targets: dict[int, Any], frames: Iterable[UserFrame]) -> dict[int, list[str]]:
    """For each target (by id), the variable names that hold it, innermost frame first.

    Looks at locals (globals for module frames) and one level into ``self``'s attributes.
    """
    found: dict[int, list[str]] = {}
    if not targets:
        return found

    def note(obj_id: int, name: str) -> None:
        names = found.setdefault(obj_id, [])
        if name not in names:
            names.append(name)

    for frame in frames:
        for name, value in list(frame.namespace.items()):
            if id(value) in targets and targets[id(value)] is value and not name.startswith("__"):
                note(id(value), name)
        for name, value in _attributes(frame.self_obj):
            if id(value) in targets and targets[id(value)] is value:
                note(id(value), f"self.{name}")
    return found


def _is_instance(value: Any, kind: type | tuple[type, ...]) -> bool:
    try:
        return isinstance(value, kind)
    except Exception:  # proxies whose __class__ raises
        return False


def objects_in_frames(kind: type | tuple[type, ...], frames: Iterable[UserFrame]) -> dict[int, tuple[Any, str]]:
    """Objects of ``kind`` held by the frames' variables (or ``self``'s attributes), with a name."""
    out: dict[int, tuple[Any, str]] = {}
    for frame in frames:
        for name, value in list(frame.namespace.items()):
            if _is_instance(value, kind) and id(value) not in out:
                out[id(value)] = (value, name)
        attrs = _attributes(frame.self_obj)
        for name, value in attrs:
            if _is_instance(value, kind) and id(value) not in out:
                out[id(value)] = (value, f"self.{name}")
    return out


def _attributes(obj: Any) -> list[tuple[str, Any]]:
    try:
        attrs = object.__getattribute__(obj, "__dict__") if obj is not None else None
    except Exception:
        return []
    return list(attrs.items()) if isinstance(attrs, dict) else []


def preferred_name(names: list[str]) -> str | None:
    """The outermost name is usually the most descriptive (``val_loader`` over ``loader``)."""
    return names[-1] if names else None
