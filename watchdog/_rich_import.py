"""Import rich without drawing from Python's global ``random`` stream.

``rich.style`` calls ``random.getrandbits`` when it is first imported. A watched run must draw
exactly what an unwatched one draws, so every watchdog module that imports rich imports this module
first: the first of them imports rich here, once, with the ``random`` state saved before and
restored after. Every later ``import rich...`` anywhere in watchdog finds ``rich.style`` already
loaded and draws nothing. rich itself is loaded only when something shows the run (the dashboard,
the terminal summary, ``watchdog report``), not by ``import watchdog``.
"""

from __future__ import annotations

import random

_state = random.getstate()
try:
    import rich.console  # noqa: F401  (imports rich.style)
finally:
    random.setstate(_state)
    del _state
