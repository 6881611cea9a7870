"""Every install returns an undo; a run keeps them on one stack and undoes them in reverse order.

Modelled on ``torch.utils.hooks.RemovableHandle`` and pluggy: undoing twice is harmless, and an
undo that fails does not stop the others from running.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

_MISSING = object()


class Undo:
    """An idempotent undo for one install."""

    __slots__ = ("_fn", "description", "after_checks")

    def __init__(self, fn: Callable[[], None], description: str = "", after_checks: bool = False):
        self._fn: Callable[[], None] | None = fn
        self.description = description
        # A display (the live dashboard): undone only once the checks have finished, so its last
        # frame holds the findings they make at the run's end. It patches nothing in torch.
        self.after_checks = after_checks

    @property
    def done(self) -> bool:
        return self._fn is None

    def __call__(self) -> None:
        fn, self._fn = self._fn, None
        if fn is not None:
            fn()

    def __repr__(self) -> str:
        return f"Undo({self.description!r}, done={self.done})"


def set_attribute(owner: Any, name: str, value: Any) -> Undo:
    """Set ``owner.name = value``; the undo restores exactly what was there (or its absence)."""
    previous = owner.__dict__.get(name, _MISSING) if isinstance(owner, type) else getattr(owner, name, _MISSING)
    setattr(owner, name, value)

    def restore() -> None:
        if previous is _MISSING:
            try:
                delattr(owner, name)
            except AttributeError:
                pass
        else:
            setattr(owner, name, previous)

    return Undo(restore, f"{getattr(owner, '__qualname__', type(owner).__name__)}.{name}")


Hook = Callable[[tuple, dict], None]


class FunctionPatch:
    """One wrapper around ``owner.name`` that runs a list of pre-hooks, each removable by its own undo.

    However many parts of watchdog watch a function (``torch.autograd.backward``: the training
    probe's backward counter, the dashboard's loss), it is wrapped once. A hook gets the call's
    ``(args, kwargs)`` before the function runs and cannot change them. A hook that raises is removed
    and its ``on_error`` is told; the other hooks and the call itself go on. The function runs
    exactly once per call, outside any ``try``: its exceptions reach the caller unchanged.

    Removing the last hook puts the original back only if ``owner.name`` is still this wrapper; if
    someone patched the function after watchdog, their patch stays and this wrapper, now without
    hooks, is a plain pass-through inside it (``torch.utils.hooks.RemovableHandle`` removes only
    its own registration in the same way).
    """

    _active: dict[tuple[int, str], "FunctionPatch"] = {}

    def __init__(self, owner: Any, name: str):
        self.owner, self.name = owner, name
        self._had_own = name in owner.__dict__ if isinstance(owner, type) else True
        self.original = getattr(owner, name)
        self.hooks: dict[int, tuple[Hook, Callable[[BaseException], None]]] = {}
        self._next_key = 0
        # What a call runs: a tuple rebuilt when a hook comes or goes (copy on write), so a call
        # reads one cell and loops, with no copy of its own.
        self._running: list[tuple[tuple[int, Hook, Callable[[BaseException], None]], ...]] = [()]
        running, original, patch = self._running, self.original, self

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for key, hook, on_error in running[0]:
                try:
                    hook(args, kwargs)
                except Exception as exc:  # watchdog's own error: this hook goes, the call does not
                    patch._remove(key)
                    try:
                        on_error(exc)
                    except Exception:
                        pass
            return original(*args, **kwargs)

        self.wrapper = wrapper

    @classmethod
    def hook(cls, owner: Any, name: str, hook: Hook, on_error: Callable[[BaseException], None]) -> Undo:
        """Add ``hook`` to the one wrapper of ``owner.name`` (created on first use)."""
        patch = cls._active.get((id(owner), name))
        if patch is None:
            patch = cls(owner, name)
            setattr(owner, name, patch.wrapper)
            cls._active[(id(owner), name)] = patch
        key = patch._next_key
        patch._next_key += 1
        patch.hooks[key] = (hook, on_error)
        patch._publish()
        return Undo(lambda: patch._remove(key), f"hook on {getattr(owner, '__name__', type(owner).__name__)}.{name}")

    def _publish(self) -> None:
        self._running[0] = tuple((key, hook, on_error) for key, (hook, on_error) in self.hooks.items())

    def _remove(self, key: int) -> None:
        self.hooks.pop(key, None)
        self._publish()
        if self.hooks:
            return
        FunctionPatch._active.pop((id(self.owner), self.name), None)
        if getattr(self.owner, self.name, None) is self.wrapper:
            if self._had_own:
                setattr(self.owner, self.name, self.original)
            else:
                delattr(self.owner, self.name)


class PatchStack:
    """The undos of one run, undone last-in first-out."""

    def __init__(self) -> None:
        self._undos: list[Undo] = []

    def __len__(self) -> int:
        return sum(1 for u in self._undos if not u.done)

    def push(self, undo: Undo) -> Undo:
        self._undos.append(undo)
        return undo

    def setattr(self, owner: Any, name: str, value: Any) -> Undo:
        return self.push(set_attribute(owner, name, value))

    def hook(self, owner: Any, name: str, hook: Hook, on_error: Callable[[BaseException], None]) -> Undo:
        """Run ``hook(args, kwargs)`` before each call of ``owner.name`` (one wrapper per function)."""
        return self.push(FunctionPatch.hook(owner, name, hook, on_error))

    def add_undo(self, fn: Callable[[], None], description: str = "", after_checks: bool = False) -> Undo:
        return self.push(Undo(fn, description, after_checks))

    def handle(self, removable: Any, description: str = "") -> Undo:
        """Adopt a torch ``RemovableHandle`` (anything with ``.remove()``)."""
        return self.push(Undo(removable.remove, description or type(removable).__name__))

    def undo_all(self, keep_after_checks: bool = False) -> list[tuple[Undo, BaseException]]:
        """Undo everything, newest first; returns the undos that failed (each is still tried once).
        `keep_after_checks`: leave the undos marked ``after_checks`` for a later call.

        Never raises: every undo runs even when one before it raised, ``KeyboardInterrupt`` and
        ``SystemExit`` included (they come back in the list, for the caller to raise when done).
        """
        failures: list[tuple[Undo, BaseException]] = []
        kept: list[Undo] = []
        while self._undos:
            undo = self._undos.pop()
            if keep_after_checks and undo.after_checks:
                kept.append(undo)
                continue
            try:
                undo()
            except BaseException as exc:  # an undo must not stop the others
                failures.append((undo, exc))
        self._undos[:0] = reversed(kept)
        return failures
