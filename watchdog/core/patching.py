"""Every install returns an undo; a run keeps them on one stack and undoes them in reverse order.

Modelled on ``torch.utils.hooks.RemovableHandle`` and pluggy: undoing twice is harmless, and an
undo that fails does not stop the others from running.
"""

from __future__ import annotations

from typing import Any, Callable

_MISSING = object()


class Undo:
    """An idempotent undo for one install."""

    __slots__ = ("_fn", "description")

    def __init__(self, fn: Callable[[], None], description: str = ""):
        self._fn: Callable[[], None] | None = fn
        self.description = description

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

    def add_undo(self, fn: Callable[[], None], description: str = "") -> Undo:
        return self.push(Undo(fn, description))

    def handle(self, removable: Any, description: str = "") -> Undo:
        """Adopt a torch ``RemovableHandle`` (anything with ``.remove()``)."""
        return self.push(Undo(removable.remove, description or type(removable).__name__))

    def undo_all(self) -> list[tuple[Undo, BaseException]]:
        """Undo everything, newest first; returns the undos that failed (each is still tried once).

        Never raises: every undo runs even when one before it raised, ``KeyboardInterrupt`` and
        ``SystemExit`` included (they come back in the list, for the caller to raise when done).
        """
        failures: list[tuple[Undo, BaseException]] = []
        while self._undos:
            undo = self._undos.pop()
            try:
                undo()
            except BaseException as exc:  # an undo must not stop the others
                failures.append((undo, exc))
        return failures
