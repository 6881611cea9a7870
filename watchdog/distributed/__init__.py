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
from .view import DistributedView

EVENTS = {
    "ranks_merged": "only in a merged report's stream (never emitted live): job, world_size, representative, "
                    "merged_by, status, ranks (each rank's state, epochs, steps, findings), stale folders, "
                    "cross_rank_checks, superseded, failed_checks, work (logs and bytes read, seconds)",
}
VIEWS = (DistributedView,)


def __getattr__(name: str) -> tuple:
    if name not in ("PROBES", "CHECKS", "CROSS_RANK_CHECKS", "AT_RUN_END"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .checkpoints import SameCheckpointPath
    from .finish import merge_at_rank_end
    from .sampler import SamplerEpochUnchanged
    from .unsharded import UnshardedTrainLoader

    globals().update(PROBES=(), CHECKS=(SamplerEpochUnchanged,),
                     CROSS_RANK_CHECKS=(SameCheckpointPath, UnshardedTrainLoader), AT_RUN_END=(merge_at_rank_end,))
    return globals()[name]
