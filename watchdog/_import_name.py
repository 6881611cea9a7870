"""The import name ``watchdog`` is shared with the filesystem-events package on PyPI.

Both install a top-level ``watchdog/`` directory: installing one over the other silently replaces
``watchdog/__init__.py``. This module (a file name the other package does not use) detects a mixed
install and says what to do, instead of a confusing ImportError or AttributeError.
"""

from __future__ import annotations

import os
import sys

FILESYSTEM_MARKERS = ("observers", "tricks", "watchmedo.py")

MIXED_INSTALL_MESSAGE = (
    "watchdog: the import name `watchdog` is taken by another package in this environment.\n"
    "  torch-watchdog (this tool) and the filesystem-events package `watchdog` (PyPI; required by\n"
    "  e.g. streamlit and mkdocs) both install a top-level `watchdog` package and cannot share one\n"
    "  environment: installing one overwrites the other's watchdog/__init__.py.\n"
    "  Fix: use a separate virtual environment for training, or reinstall cleanly:\n"
    "    pip uninstall -y watchdog torch-watchdog && pip install torch-watchdog"
)


def filesystem_watchdog_installed() -> str | None:
    """The version of the PyPI filesystem-events ``watchdog`` distribution, if installed."""
    from importlib import metadata  # not at import: `import watchdog` stays cheap

    try:
        return metadata.version("watchdog")
    except metadata.PackageNotFoundError:
        return None
    except Exception:
        return None


def package_is_ours(module: object) -> bool:
    """Whether ``module`` is torch-watchdog's package (checked without importing its lazy names)."""
    names = getattr(module, "__all__", None) or ()
    return "watch" in names and "WatchdogStop" in names


def mixed_install_detected() -> bool:
    here = os.path.dirname(os.path.abspath(__file__))
    files_mixed = any(os.path.exists(os.path.join(here, marker)) for marker in FILESYSTEM_MARKERS)
    module = sys.modules.get(__package__ or "watchdog")
    return files_mixed or (module is not None and not package_is_ours(module))
