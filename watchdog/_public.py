"""The public names of ``watchdog`` and ``torch_watchdog`` and the modules that hold them.

Both packages' ``__init__`` import a name on its first use (``watch`` imports the run; torch loads
only when a run starts), so ``import watchdog`` and ``watchdog --help`` stay cheap. ``torch_watchdog``
imports from here, never through ``watchdog/__init__.py``, which another package of the same import
name may have overwritten.
"""
from __future__ import annotations

import importlib
from typing import Any

# Public name -> (module, attribute).
PUBLIC: dict[str, tuple[str, str]] = {
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


def load(package: str, namespace: dict[str, Any], name: str) -> Any:
    """The public ``name`` for ``package``'s module ``__getattr__``, kept in its namespace once loaded."""
    try:
        module_name, attribute = PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), attribute)
    namespace[name] = value  # later accesses are plain attribute reads
    return value
