"""``import torch_watchdog``: the same API as ``import watchdog``, under a name no other package uses.

The filesystem-events package on PyPI is also imported as ``watchdog``; installed beside this one, it
overwrites ``watchdog/__init__.py`` and ``import watchdog`` no longer gives ``watch``. This alias
imports the public names from the modules that hold them (``watchdog.core.run``, ...), never through
``watchdog/__init__.py``, so it keeps working in such a mixed environment::

    import torch_watchdog as watchdog
"""
from typing import TYPE_CHECKING, Any

from watchdog._version import __version__

# Public name -> (module, attribute), imported on first access (as in watchdog/__init__.py).
_PUBLIC: dict[str, tuple[str, str]] = {
    "Finding": ("watchdog.core.findings", "Finding"),
    "WatchdogStop": ("watchdog.core.findings", "WatchdogStop"),
    "loader_role": ("watchdog.core.loaders", "set_loader_role"),
    "Run": ("watchdog.core.run", "Run"),
    "WatchdogUsageError": ("watchdog.core.run", "WatchdogUsageError"),
    "WatchOptions": ("watchdog.core.run", "WatchOptions"),
    "current_run": ("watchdog.core.run", "current_run"),
    "mark_epoch": ("watchdog.core.run", "mark_epoch"),
    "watch": ("watchdog.core.run", "watch"),
}

__all__ = ["__version__", *sorted(_PUBLIC)]

if TYPE_CHECKING:
    from watchdog.core.findings import Finding, WatchdogStop
    from watchdog.core.loaders import set_loader_role as loader_role
    from watchdog.core.run import Run, WatchdogUsageError, WatchOptions, current_run, mark_epoch, watch


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'torch_watchdog' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
