"""Merging the ranks of one multi-process run into one set of findings.

A finding that several ranks report (same ``code`` and ``key``) appears once, naming its ranks
("ranks 0–7: ..."), with each rank's evidence kept; the cross-rank checks add what only the ranks
together show, and decide in place of the ranks the codes they supersede.
"""
from __future__ import annotations

import re
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
    """One finding from the ranks that reported it: their words once, every rank's evidence.

    Ranks whose messages differ only in their figures (each rank's own rate, count, size) share one
    message in which each differing figure lists the ranks' values ("+24.0 KiB/epoch (rank 0),
    +16.0 KiB/epoch (rank 1)"); messages that differ in their words keep the lowest rank's, said so.
    """
    ranks = [rank for rank, _ in items]
    shown_rank, shown = min(items, key=lambda item: item[0])
    worst = max((f.get("severity") for _, f in items), key=severity_rank)
    same_words = len({f.get("message") for _, f in items}) == 1
    label = rank_label(ranks)
    if len(ranks) == 1 or same_words:
        message = f"{label}: {shown.get('message', '')}"
    else:
        merged = figures_per_rank([(rank, str(f.get("message", ""))) for rank, f in items])
        if merged is not None:
            message = f"{label}: {merged}"
        else:
            message = (f"{label} (rank {shown_rank}'s figures; each rank's in evidence.ranks): "
                       f"{shown.get('message', '')}")
    evidence = dict(shown.get("evidence") or {})
    if len(ranks) > 1 and not same_words:
        evidence["ranks"] = {str(rank): f.get("evidence") for rank, f in items}
    return {**shown, "severity": worst, "message": message, "evidence": evidence, "ranks": ranks}


# A figure in a message: a number with its sign, thousands separators, decimals, unit and "/epoch",
FIGURE = re.compile(r"(?<![\w.])[~+\-−]*\d[\d,]*(?:\.\d+)?(?:\s?(?:B|KiB|MiB|GiB|TiB|ms|s)\b|%)?"
                    r"(?:/(?:epoch|step|s)\b)?(?!\w)")  # not inside a name: ckpt_rank1.pt, cuda0
MAX_FIGURE_GROUPS = 4  # distinct values of one figure listed; more are left to evidence.ranks


def figures_per_rank(messages: Sequence[tuple[int, str]]) -> str | None:
    """The ranks' messages as one, when they differ only in their figures (None otherwise): a figure
    the ranks agree on is written once; one they differ on lists each value with its ranks."""
    split = [(rank, FIGURE.split(message), FIGURE.findall(message)) for rank, message in messages]
    words = split[0][1]
    if any(parts != words for _, parts, _ in split):
        return None
    out = [words[0]]
    for i, text in enumerate(words[1:]):
        by_value: dict[str, list[int]] = {}
        for rank, _, figures in split:
            by_value.setdefault(figures[i], []).append(rank)
        if len(by_value) == 1:
            out.append(next(iter(by_value)))
        else:
            groups = [f"{value} ({rank_label(value_ranks)})" for value, value_ranks in by_value.items()]
            if len(groups) > MAX_FIGURE_GROUPS:
                groups = groups[:MAX_FIGURE_GROUPS - 1] + ["… (each rank's in evidence.ranks)"]
            out.append(", ".join(groups))
        out.append(text)
    return "".join(out)


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
