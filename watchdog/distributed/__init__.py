"""Multi-process runs (``torchrun``): each rank watched as one run, the ranks merged into one report.

Each rank writes ``DIR/rank<N>/`` (``core.ranks.RankInfo`` names it); the merge (``merge.py``) reads
the ranks' folders (``records.py``), deduplicates their findings and runs the cross-rank checks
(``crossrank.py``), which see what no rank alone can. No collective is ever issued on the user's
process group: the ranks meet only in the report directory.
"""

EVENTS: dict[str, str] = {}
VIEWS: tuple = ()


def __getattr__(name: str) -> tuple:
    if name not in ("PROBES", "CHECKS", "CROSS_RANK_CHECKS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .checkpoints import SameCheckpointPath

    globals().update(PROBES=(), CHECKS=(), CROSS_RANK_CHECKS=(SameCheckpointPath,))
    return globals()[name]
