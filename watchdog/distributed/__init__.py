"""Multi-process runs (``torchrun``): each rank watched as one run, the ranks merged into one report.

Each rank writes ``DIR/rank<N>/`` (``core.ranks.RankInfo`` names it); at the end of the job the last
rank to finish (``finish.py``: its run-end hook, ``AT_RUN_END``), or ``watchdog report DIR``, reads
the ranks' folders (``records.py``, ``job.py``), deduplicates their findings and runs the cross-rank
checks (``merge.py``, ``crossrank.py``), which see what no rank alone can, and writes
``DIR/report.json`` and ``DIR/report.html`` from one merged event stream (``view.py`` shows the
ranks). No collective is ever issued on the user's process group: the ranks meet only in the report
directory. The design, its exchanges and its bounds: ``docs/multi-process.md``.

This feature's own checks: ``checkpoints.py`` (across ranks: one checkpoint path), ``sampler.py``
(per rank, live: a shuffling ``DistributedSampler`` whose epoch never moves) and ``unsharded.py``
(across ranks: every rank trains on the same samples).
"""
from typing import Any

EVENTS = {
    "ranks_merged": "only in a merged report's stream (never emitted live): job, world_size, representative, "
                    "merged_by, status, ranks (each rank's state, epochs, steps, findings), stale folders, "
                    "cross_rank_checks, superseded, failed_checks, work (logs and bytes read, seconds)",
}


def merge_at_rank_end(run: Any) -> None:
    """The run-end hook (``finish.merge_at_rank_end``): the merge's modules load only in a rank of a
    multi-process run; a single process has nothing to merge."""
    if getattr(run, "rank_info", None) is None:
        return
    from .finish import merge_at_rank_end as merge

    merge(run)


AT_RUN_END = (merge_at_rank_end,)


def __getattr__(name: str) -> tuple:
    if name == "VIEWS":  # the views (and report.fold, report.svg) load when a view is made
        from .view import DistributedView

        globals()["VIEWS"] = (DistributedView,)
        return globals()[name]
    if name == "CROSS_RANK_CHECKS":  # the merge's
        from .checkpoints import SameCheckpointPath
        from .unsharded import UnshardedTrainLoader

        globals()["CROSS_RANK_CHECKS"] = (SameCheckpointPath, UnshardedTrainLoader)
        return globals()[name]
    if name not in ("PROBES", "CHECKS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .sampler import SamplerEpochUnchanged

    globals().update(PROBES=(), CHECKS=(SamplerEpochUnchanged,))
    return globals()[name]
