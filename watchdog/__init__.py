"""watchdog: a runtime watchdog for PyTorch training loops.

    import watchdog

    @watchdog.watch                 # or @watchdog.watch(report_dir="runs/wd", strict=True)
    def train(model, train_loader, val_loader, optimizer, epochs): ...

    with watchdog.watch() as run:   # run.findings readable after the block
        ...

Not the filesystem-events package of the same import name: see the README.
"""

from . import _rich_import  # noqa: F401  (first: rich must not draw from `random`)
from ._version import __version__
from .core.findings import Finding, WatchdogStop
from .core.loaders import set_loader_role as loader_role
from .core.run import Run, WatchdogUsageError, WatchOptions, current_run, mark_epoch, watch

__all__ = [
    "__version__",
    "Finding",
    "Run",
    "WatchOptions",
    "WatchdogStop",
    "WatchdogUsageError",
    "current_run",
    "loader_role",
    "mark_epoch",
    "watch",
]


def _warn_if_mixed() -> None:
    from . import _import_name

    if _import_name.mixed_install_detected():
        import warnings

        warnings.warn(_import_name.MIXED_INSTALL_MESSAGE, RuntimeWarning, stacklevel=3)


_warn_if_mixed()
