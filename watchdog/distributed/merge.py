"""Merging the ranks of one multi-process run into one set of findings.

A finding that several ranks report (same ``code`` and ``key``) appears once, naming its ranks
("ranks 0–7: ..."), with each rank's evidence kept; the cross-rank checks add what only the ranks
together show, and decide in place of the ranks the codes they supersede.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..core.format import most_severe_first, severity_rank
from .crossrank import CrossRankCheck
from .records import RankRecord


def rank_label(ranks: Sequence[int]) -> str:
    """``rank 3``, ``ranks 0, 3``, ``ranks 0–7`` (runs of three or more as ranges)."""
    ordered = sorted(set(ranks))
    if len(ordered) == 1:
        return f"rank {ordered[0]}"
    parts: list[str] = []
    start = prev = ordered[0]
    for r in ordered[1:] + [None]:  # type: ignore[list-item]
        if r is not None and r == prev + 1:
            prev = r
            continue
        if prev - start >= 2:
            parts.append(f"{start}–{prev}")
        else:
            parts.extend(str(x) for x in range(start, prev + 1))
        if r is not None:
            start = prev = r
    return "ranks " + ", ".join(parts)


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


def merge_directory(directory: Any) -> tuple[list[RankRecord], MergedFindings]:
    """Read every rank folder of ``directory`` and merge their findings with the cross-rank checks'."""
    from pathlib import Path

    from .records import read_rank_records

    records = read_rank_records(Path(directory))
    return records, merge_findings(records, cross_rank_checks())
