"""Validating on training data: which base-dataset indices each DataLoader serves, and overlaps.

The capture and the check load torch: they are imported when a run asks the registry for them, so
``watchdog report`` renders this feature's view without torch. In a multi-process run each rank
exports what it served (``export.py``) and the merge compares the ranks (``crossrank.py``, which
needs no torch either).
"""


def __getattr__(name: str) -> tuple:
    if name == "VIEWS":  # the views (and report.fold, report.svg) load when a view is made
        from .view import OverlapView

        globals()["VIEWS"] = (OverlapView,)
        return globals()[name]
    if name == "CROSS_RANK_CHECKS":
        from .crossrank import TrainEvalAcrossRanks

        globals().update(CROSS_RANK_CHECKS=(TrainEvalAcrossRanks,))
        return globals()[name]
    if name not in ("PROBES", "CHECKS", "PASS_CAPTURES"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .capture import IndexCapture
    from .check import OverlapCheck
    from .export import ServedExport

    globals().update(PROBES=(ServedExport,), CHECKS=(OverlapCheck,), PASS_CAPTURES=(IndexCapture,))
    return globals()[name]
