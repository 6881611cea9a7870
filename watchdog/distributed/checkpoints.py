"""Several ranks saving a checkpoint to the same file at (nearly) the same step.

``distributed/same-checkpoint-path`` (error): under ``torchrun`` every rank runs the same script, so
a ``torch.save(state, "ckpt.pt")`` with no rank guard runs on every rank at once. The ranks' writes
to one file interleave: the file can be torn (a zip archive with one rank's header and another's
records, which fails to load) or hold whichever rank finished last. The fix is to save on one rank
(``if dist.get_rank() == 0:``) or to put the rank in the file name.

**Same file.** Each rank logs the absolute path of every ``torch.save`` to a path or a named open
file (``checkpoint_saved``: ``os.path.abspath`` of what the rank passed, relative to its own working
directory; symbolic links are not resolved) and its host (``run_start``'s rank info). Two ranks on
one host that name one absolute path write one file. Two ranks on different hosts that name one
path write one file only if that path is on a shared file system (NFS, Lustre, GPFS: where
clusters usually keep checkpoints) and two files if it is on each node's local disk: which one
cannot be told from the logs, so a collision seen only across hosts is a warning that says so.
Saves to an in-memory buffer or an unnamed stream (``torch.distributed.checkpoint`` writes each
rank's ``__<rank>_0.distcp`` through one) name no path and never collide.

**Same step.** Saves of two ranks collide when their optimizer-step counts differ by at most
``NEAR_STEPS`` (ranks of a DDP job step in lockstep, so the same save runs at the same count on
every rank; a save at step 100 on rank 0 and at step 5000 on rank 1 overwrites, but does not race).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..core.findings import Finding
from ..core.format import fmt_int
from .crossrank import CrossRankCheck
from .merge import rank_label
from .records import RankRecord

NEAR_STEPS = 2  # saves of two ranks at most this many optimizer steps apart are "the same step"
EVIDENCE_CAP = 50

FIX = ("Save on one rank only: `if dist.get_rank() == 0: torch.save(state, path)` (then `dist.barrier()` "
       "before any rank loads it), or give each rank its own file: "
       "`torch.save(state, f\"ckpt_rank{dist.get_rank()}.pt\")`. For sharded state (FSDP), "
       "`torch.distributed.checkpoint.save(state, checkpoint_id=dir)` writes one file per rank.")


@dataclass(frozen=True)
class Save:
    rank: int
    host: str | None
    path: str
    steps: int
    where: str | None


def ranks_saves(records: Sequence[RankRecord]) -> list[Save]:
    """Every save to a named file, on every rank."""
    saves = []
    for record in records:
        host = record.rank_info.get("host")
        for event in record.of_kind("checkpoint_saved"):
            path = event.data.get("path")
            if isinstance(path, str) and path:
                saves.append(Save(record.rank, host, path, int(event.data.get("steps") or 0), event.data.get("where")))
    return saves


def collisions(saves: Iterable[Save]) -> list[list[Save]]:
    """Groups of saves of one path at (nearly) the same step by two ranks or more: the saves sorted by
    step, cut where two consecutive ones are more than ``NEAR_STEPS`` apart."""
    groups: list[list[Save]] = []
    current: list[Save] = []
    for save in sorted(saves, key=lambda s: (s.steps, s.rank)):
        if current and save.steps - current[-1].steps > NEAR_STEPS:
            groups.append(current)
            current = []
        current.append(save)
    if current:
        groups.append(current)
    return [g for g in groups if len({s.rank for s in g}) > 1]


def same_host(group: Sequence[Save]) -> bool:
    """Whether two ranks of ``group`` ran on one host (then they surely wrote one file)."""
    by_host: dict[str | None, set[int]] = {}
    for save in group:
        by_host.setdefault(save.host, set()).add(save.rank)
    return any(len(ranks) > 1 for host, ranks in by_host.items())


class SameCheckpointPath(CrossRankCheck):
    """Ranks that ``torch.save`` to one path at (nearly) the same step."""

    name = "same-checkpoint-path"

    def check(self, records: Sequence[RankRecord]) -> Iterable[Finding]:
        by_path: dict[str, list[Save]] = {}
        for save in ranks_saves(records):
            by_path.setdefault(save.path, []).append(save)
        findings = []
        for path, saves in sorted(by_path.items()):
            if len({s.rank for s in saves}) < 2:
                continue
            groups = collisions(saves)
            if groups:
                findings.append(self._finding(path, groups))
        return findings

    def _finding(self, path: str, groups: list[list[Save]]) -> Finding:
        ranks = sorted({s.rank for g in groups for s in g})
        hosts = {str(s.rank): s.host for g in groups for s in g}
        on_one_host = any(same_host(g) for g in groups)
        steps = [min(s.steps for s in g) for g in groups]
        shown = ", ".join(fmt_int(s) for s in steps[:5]) + (", …" if len(steps) > 5 else "")
        times = f"{fmt_int(len(groups))} times, at steps {shown}" if len(groups) > 1 else f"at step {shown}"
        first = min((s for s in groups[0]), key=lambda s: s.rank)
        label = rank_label(ranks)
        message = f"{label} saved checkpoints to the same file {path} at the same step ({times})"
        if on_one_host:
            message += (": their writes to one file interleave, which can leave a torn checkpoint that fails to "
                        "load, or one rank's state silently in place of another's.")
            severity = "error"
        else:
            host_names = ", ".join(sorted({str(h) for h in hosts.values()}))
            message += (f", each from a different host ({host_names}): if that path is on a shared file system "
                        "(as cluster checkpoints usually are), their writes to one file interleave and can leave a "
                        "torn checkpoint; on each node's local disk it is one file per node and fine.")
            severity = "warning"
        return Finding(
            code="distributed/same-checkpoint-path",
            severity=severity,
            message=message,
            fix=FIX,
            evidence={
                "path": path,
                "ranks": ranks,
                "hosts": hosts,
                "same_host": on_one_host,
                "collisions": len(groups),
                "steps": steps[:EVIDENCE_CAP],
                "near_steps": NEAR_STEPS,
                "saves_by_rank": {str(r): sum(1 for g in groups for s in g if s.rank == r) for r in ranks},
                "where_by_rank": {str(s.rank): s.where for g in groups for s in g},
            },
            where=first.where,
            key=path,
            ranks=ranks,
        )
