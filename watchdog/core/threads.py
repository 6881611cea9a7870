"""A run's own threads, started without waiting for them to be scheduled.

``threading.Thread.start()`` returns only once the new thread has run its first instructions. On a
busy machine (the cores taken by the training, its DataLoader workers or another job) the new thread
waits for a time slice, and the caller waits with it: 1-3 ms measured on a loaded 2-core machine,
at each run's start, for each thread. A ``BackgroundThread`` has a short-lived helper thread (the
interpreter's own ``_thread``, not a ``threading.Thread``) make that wait, so the run's start returns
at once. The thread itself is an ordinary daemon ``threading.Thread`` (named, listed by
``threading.enumerate()`` from the moment the helper starts it); ``join()`` waits for the start,
then for the thread.
"""

from __future__ import annotations

import _thread
import threading
import time
from typing import Any, Callable


class BackgroundThread:
    """``target(*args)`` on a daemon thread called ``name``, started by :meth:`start` without waiting."""

    def __init__(self, target: Callable[..., Any], name: str, args: tuple[Any, ...] = ()):
        self.name = name
        self.thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._launched = threading.Event()  # set once the thread was started (or could not be)
        self.start_error: BaseException | None = None

    def start(self) -> "BackgroundThread":
        try:
            _thread.start_new_thread(self._launch, ())
        except RuntimeError:  # no helper thread to be had: start it here, waiting as threading does
            self._launch()
        return self

    def _launch(self) -> None:
        try:
            self.thread.start()
        except BaseException as exc:  # noqa: BLE001 - the helper has no one to raise to; join() says it
            self.start_error = exc
        finally:
            self._launched.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait (at most ``timeout`` seconds) for the thread to end; whether it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._launched.wait(timeout):
            return False
        if self.start_error is not None:
            return True
        self.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.thread.is_alive()

    def is_alive(self) -> bool:
        return not self._launched.is_set() or self.thread.is_alive()
