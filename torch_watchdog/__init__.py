"""``import torch_watchdog``: the same API as ``import watchdog``, under a name no other package uses.

The filesystem-events package on PyPI is also imported as ``watchdog``; installed beside this one, it
overwrites ``watchdog/__init__.py`` and ``import watchdog`` no longer gives ``watch``. This alias
imports the public names from the modules that hold them (``watchdog.core.run``, ...), never through
``watchdog/__init__.py``, so it keeps working in such a mixed environment::

    import torch_watchdog as watchdog
"""
from typing import TYPE_CHECKING, Any

from watchdog._version import __version__

from watchdog._public import PUBLIC as _PUBLIC
from watchdog._public import load as _load

__all__ = ["__version__", *sorted(_PUBLIC)]

if TYPE_CHECKING:
    from watchdog.core.findings import Finding, WatchdogStop
    from watchdog.core.loaders import set_loader_role as loader_role
    from watchdog.core.run import Run, WatchdogUsageError, WatchOptions, current_run, mark_epoch, watch


def __getattr__(name: str) -> Any:
    return _load("torch_watchdog", globals(), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
