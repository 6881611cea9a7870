"""The base class of cross-rank checks: every rank's record in, findings out.

A cross-rank check runs once, when the ranks' reports are merged (the last rank to finish, or
``watchdog report DIR``). It reads only what the ranks left in the report directory (their event
logs and exported files: ``RankRecord``) and never talks to a live process, so it can neither hang
nor perturb the job.
"""
from __future__ import annotations

from typing import ClassVar, Iterable, Sequence

from ..core.findings import Finding
from .records import RankRecord


class CrossRankCheck:
    """``check(records)`` returns the findings that only the ranks together show.

    ``supersedes`` names per-rank finding codes this check decides for the merged run instead: the
    merge drops the ranks' own findings of those codes (each rank alone could not know, e.g. that
    another rank evaluated the epoch it skipped) and keeps this check's.
    """

    name: ClassVar[str] = "cross-rank"
    supersedes: ClassVar[tuple[str, ...]] = ()

    def check(self, records: Sequence[RankRecord]) -> Iterable[Finding]:
        """The findings for the merged run. Returns none by default."""
        return ()
