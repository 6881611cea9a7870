"""What the framework callbacks share: the watched run they start (or join) and end, and their guard.

A callback made by the user (``WatchdogCallback(report_dir=...)``) owns a span: it starts the run
when the framework's training starts, or joins the run already active (``watchdog run``, an
enclosing ``watchdog.watch()``), and ends it (or leaves it) when training ends, also on an
exception. A callback the frameworks probe attached to a trainer for the run (``observer()``)
starts nothing: it only observes.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from ..core.findings import WatchdogStop
from ..core.run import current_run, watch


class WatchedSpan:
    """The runs a callback entered (a stack: each ``begin`` is ended by one ``end``)."""

    def __init__(self, options: dict[str, Any]):
        self.watcher = watch(**options)  # a bad option raises WatchdogUsageError here, in the user's code
        self.entered = 0

    def begin(self) -> Any:
        run = self.watcher.__enter__()
        self.entered += 1
        return run

    def end(self, exc: BaseException | None = None) -> None:
        """Leave the run entered last (end it, if this span started it); nothing when none is open."""
        if self.entered == 0:
            return
        self.entered -= 1
        self.watcher.__exit__(type(exc) if exc is not None else None, exc,
                              exc.__traceback__ if exc is not None else None)


def guarded(hook: Callable[..., Any]) -> Callable[..., Any]:
    """A callback hook that never raises into the user's training: an error switches the frameworks
    part off (an internal-error finding); ``WatchdogStop`` (``strict``) passes, as the user asked."""

    def run_hook(*args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is None or run.status != "running" or run.is_disabled("probe:frameworks"):
            return None
        try:
            return hook(*args, **kwargs)
        except WatchdogStop:
            raise
        except Exception as exc:
            run.internal_error("probe:frameworks", exc)
            return None

    run_hook.__name__ = hook.__name__
    run_hook.__qualname__ = hook.__qualname__
    run_hook.__doc__ = hook.__doc__
    return run_hook


def trainer_on_stack() -> Any:
    """The framework trainer whose method called this hook (the HF callbacks are not given it)."""
    from .frameworks import find_trainer

    found = find_trainer(sys._getframe(1))
    return found[1] if found is not None else None
