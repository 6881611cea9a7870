"""Pausing Python's cyclic garbage collector while watchdog builds objects that all stay alive.

A full collection walks every tracked object in the process: with torch imported, ~170,000 of them,
70-110 ms on the project's 2-core machine. Three of watchdog's own steps allocate thousands of
objects that none of them frees: a run's start (its modules, checks and probes), a census and the
end-of-run reports. Left on, the collector would walk the whole heap during them and find nothing
of theirs to free. ``gc_paused()`` switches it off for the step and back on as it was (a program
that turned it off keeps it off). The objects the step kept are counted as usual afterwards: a
process that goes on allocating runs its next collections when its own allocations call for them.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic collection inside the block; the collector is resumed as it was."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
