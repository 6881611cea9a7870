"""Validating on training data: which base-dataset indices each DataLoader serves, and overlaps.

The capture and the check load torch: they are imported when a run asks the registry for them, so
``watchdog report`` renders this feature's view without torch.
"""
from .view import OverlapView

VIEWS = (OverlapView,)


def __getattr__(name: str) -> tuple:
    if name not in ("PROBES", "CHECKS", "PASS_CAPTURES"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .capture import IndexCapture
    from .check import OverlapCheck

    globals().update(PROBES=(), CHECKS=(OverlapCheck,), PASS_CAPTURES=(IndexCapture,))
    return globals()[name]
