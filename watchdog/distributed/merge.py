"""Merging the ranks of one multi-process run into one set of findings.

A finding that several ranks report (same ``code`` and ``key``) appears once, naming its ranks
("ranks 0–7: ..."), with each rank's evidence kept; the cross-rank checks add what only the ranks
together show, and decide in place of the ranks the codes they supersede.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..core.events import Event
from ..core.findings import Finding
from ..core.format import fmt_ranks, most_severe_first, severity_rank
from .crossrank import CrossRankCheck
from .records import RankRecord


def rank_label(ranks: Sequence[int]) -> str:
    """``rank 3``, ``ranks 0, 3``, ``ranks 0–7`` (runs of three or more as ranges: ``fmt_ranks``)."""
    return fmt_ranks(ranks)


@dataclass
class MergedFindings:
    findings: list[dict[str, Any]] = field(default_factory=list)
    failed_checks: dict[str, str] = field(default_factory=dict)  # check name -> error


def merge_findings(records: Sequence[RankRecord], checks: Sequence[CrossRankCheck]) -> MergedFindings:
    """The merged run's findings: the ranks' own, deduplicated, and the cross-rank checks'."""
    merged = MergedFindings()
    superseded = {code for check in checks for code in check.supersedes}
    groups: dict[tuple[Any, Any], list[tuple[int, dict[str, Any]]]] = {}
    for record in sorted(records, key=lambda r: r.rank):
        for finding in record.findings():
            if finding.get("code") in superseded:
                continue
            groups.setdefault((finding.get("code"), finding.get("key")), []).append((record.rank, finding))
    for items in groups.values():
        merged.findings.append(_one_finding(items))
    for check in checks:
        try:
            for finding in check.check(records):
                finding.check = finding.check or check.name
                merged.findings.append(finding.to_dict())
        except Exception as exc:  # a failing cross-rank check is said, never raised
            merged.failed_checks[check.name] = f"{type(exc).__name__}: {exc}"[:500]
    merged.findings.sort(key=lambda f: (most_severe_first(f.get("severity")), f.get("time") or 0.0))
    return merged


def _one_finding(items: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """One finding from the ranks that reported it: the lowest rank's words, every rank's evidence."""
    ranks = [rank for rank, _ in items]
    shown_rank, shown = min(items, key=lambda item: item[0])
    worst = max((f.get("severity") for _, f in items), key=severity_rank)
    same_words = len({f.get("message") for _, f in items}) == 1
    label = rank_label(ranks)
    if len(ranks) == 1 or same_words:
        message = f"{label}: {shown.get('message', '')}"
    else:
        message = f"{label} (rank {shown_rank}'s figures; each rank's in evidence.ranks): {shown.get('message', '')}"
    evidence = dict(shown.get("evidence") or {})
    if len(ranks) > 1 and not same_words:
        evidence["ranks"] = {str(rank): f.get("evidence") for rank, f in items}
    return {**shown, "severity": worst, "message": message, "evidence": evidence, "ranks": ranks}


def cross_rank_checks() -> list[CrossRankCheck]:
    """One instance of each cross-rank check the features declare (``CROSS_RANK_CHECKS``)."""
    from ..core import registry

    return [check_class() for check_class in registry.cross_rank_checks()]


def merge_directory(directory: Any, key: tuple[str | None, int] | None = None) -> tuple[list[RankRecord], MergedFindings]:
    """Read the rank folders of ``directory`` and merge the findings of one run's ranks (``key``'s, by
    default the run that started last: ``job.read_job``) with the cross-rank checks'. Folders of other
    runs (stale) are left out."""
    from pathlib import Path

    from .job import read_job

    job = read_job(Path(directory), key)
    records = job.records if job is not None else []
    return records, merge_findings(records, cross_rank_checks())


# -- the merged run as one event stream ------------------------------------------------------------
MERGED_KIND = "ranks_merged"


def representative(records: Sequence[RankRecord]) -> RankRecord | None:
    """The rank whose own events stand for the run in the merged views (its passes, epochs, memory
    and checkpoints are charted): the lowest rank that finished, else the lowest that started."""
    started = sorted((r for r in records if r.start), key=lambda r: r.rank)
    return next((r for r in started if r.finished), started[0] if started else None)


def merged_events(job: Any, merged: MergedFindings, *, merged_by: int | None, seconds: float,
                  checks: Sequence[CrossRankCheck] = ()) -> list[Event]:
    """The merged run, as an event stream the reporters render unchanged (report.json, HTML, terminal).

    The representative rank's events (``representative``) with its own findings replaced by the
    merged ones (``merge_findings``: each naming its ranks), a ``ranks_merged`` event right after its
    ``run_start`` (every rank's state, the stale folders, what the merge read), each failed cross-rank
    check as a ``watchdog/internal-error`` finding, and a ``run_end`` whose status is the merged one
    (``job.merged_status``); a representative that did not finish gets one from its last events.
    """
    from .job import merged_status

    rep = representative(job.records)
    if rep is None:
        return []
    body = [e for e in rep.events if e.kind not in ("finding", "run_end")]
    end = rep.end
    last_t = rep.events[-1].t if rep.events else time.time()
    status = merged_status(job.ranks)
    superseded = sorted({code for check in checks for code in check.supersedes})
    ranks_data = {
        "job": job.key[0], "watch_index": job.key[1], "world_size": job.world_size,
        "representative": rep.rank, "merged_by": merged_by, "status": status,
        "ranks": [state.to_dict() for state in job.ranks],
        "stale": [state.to_dict() for state in job.stale],
        "cross_rank_checks": [check.name for check in checks], "superseded": superseded,
        "failed_checks": dict(merged.failed_checks),
        "work": {"logs_read": job.logs_read, "bytes_read": job.bytes_read,
                 "events_read": sum(len(r.events) for r in job.records), "seconds": round(seconds, 4)},
        "merged_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    start_t = body[0].t if body else last_t
    stream = body[:1] + [Event(MERGED_KIND, ranks_data, None, start_t)] + body[1:]
    findings = list(merged.findings) + [_failed_check_finding(name, error, last_t)
                                        for name, error in merged.failed_checks.items()]
    for finding in findings:
        stream.append(Event("finding", {**finding, "update": False}, None, finding.get("time") or last_t))
    epochs, steps = rep.progress()
    end_data: dict[str, Any] = dict(end) if end is not None else {"epochs": epochs, "steps": steps}
    end_data["status"] = status
    stream.append(Event("run_end", end_data, None, last_t))
    return stream


def _failed_check_finding(name: str, error: str, t: float) -> dict[str, Any]:
    return Finding(
        code="watchdog/internal-error", severity="warning",
        message=f"watchdog's cross-rank check {name} failed and was skipped in the merge ({error}); "
                "the ranks' own findings are all here.",
        fix="Nothing to change in your code; please report this with the evidence below.",
        evidence={"component": f"cross-rank:{name}", "detail": error}, key=f"cross-rank:{name}",
        check=name, time=t,
    ).to_dict()
