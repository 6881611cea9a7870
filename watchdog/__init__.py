"""watchdog: a runtime watchdog for PyTorch training loops.

    import watchdog

    @watchdog.watch                 # or @watchdog.watch(report_dir="runs/wd", strict=True)
    def train(model, train_loader, val_loader, optimizer, epochs): ...

    with watchdog.watch() as run:   # run.findings readable after the block
        ...

Not the filesystem-events package of the same import name: see the README.

The public names are imported on first use (``watchdog.watch`` imports the session; the probes
and torch only load when a run starts), so ``import watchdog`` and ``watchdog --help`` stay cheap.
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__

from ._public import PUBLIC as _PUBLIC
from ._public import load as _load

__all__ = ["__version__", *sorted(_PUBLIC)]

if TYPE_CHECKING:
    from .core.findings import Finding, WatchdogStop
    from .core.loaders import set_loader_role as loader_role
    from .core.run import Run, WatchdogUsageError, WatchOptions, current_run, mark_epoch, watch


def __getattr__(name: str) -> Any:
    return _load("watchdog", globals(), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


def _warn_if_mixed() -> None:
    from . import _import_name

    if _import_name.mixed_install_detected():
        import warnings

        warnings.warn(_import_name.MIXED_INSTALL_MESSAGE, RuntimeWarning, stacklevel=3)


_warn_if_mixed()
