"""Merging the ranks of one multi-process run into one set of findings.

A finding that several ranks report (same ``code`` and ``key``) appears once, naming its ranks
("ranks 0–7: ..."), with each rank's evidence kept; the cross-rank checks add what only the ranks
together show, and decide in place of the ranks the codes they supersede.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..core.events import Event
from ..core.findings import Finding
from ..core.format import fmt_ranges, fmt_ranks, most_severe_first, severity_rank
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
            groups.setdefault((finding.get("code"), key_shape(finding.get("key"))), []).append((record.rank, finding))
    for items in groups.values():
        for same in _same_finding(items):
            merged.findings.append(_one_finding(same))
    for check in checks:
        try:
            for finding in check.check(records):
                finding.check = finding.check or check.name
                merged.findings.append(finding.to_dict())
        except Exception as exc:  # a failing cross-rank check is said, never raised
            merged.failed_checks[check.name] = f"{type(exc).__name__}: {exc}"[:500]
    merged.findings.sort(key=lambda f: (most_severe_first(f.get("severity")), f.get("time") or 0.0))
    return merged


def key_shape(key: Any) -> Any:
    """A finding's key with its figures blanked: ``cuda:0`` on rank 0 and ``cuda:1`` on rank 1 (each
    rank's own device) are the same finding."""
    return FIGURE.sub("#", key) if isinstance(key, str) else key


def _same_finding(items: list[tuple[int, dict[str, Any]]]) -> list[list[tuple[int, dict[str, Any]]]]:
    """Findings of one code whose keys differ at most in figures, split into the findings they are:
    one when every rank has one and their messages differ only in figures too (the same leak on each
    rank's device), else one per exact key (a rank's two devices stay two findings)."""
    if len({f.get("key") for _, f in items}) == 1:
        return [items]
    ranks = [rank for rank, _ in items]
    if len(ranks) == len(set(ranks)) and figures_per_rank([(r, str(f.get("message", ""))) for r, f in items]):
        return [items]
    by_key: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
    for rank, finding in items:
        by_key.setdefault(finding.get("key"), []).append((rank, finding))
    return list(by_key.values())


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
    if len({f.get("key") for _, f in items}) > 1:
        evidence["key_by_rank"] = {str(rank): f.get("key") for rank, f in items}
    return {**shown, "severity": worst, "message": message, "evidence": evidence, "ranks": ranks}


# A figure in a message: a number with its sign, thousands separators, decimals, unit and "/epoch",
# a rate's unit word is part of it ("+20 tensors/epoch"); not inside a name ("ckpt_rank1.pt", "cuda0").
FIGURE = re.compile(r"(?<![\w.])[~+\-−]*\d[\d,]*(?:\.\d+)?"
                    r"(?:\s?(?:B|KiB|MiB|GiB|TiB|ms|s)\b|%|\s[a-z]+(?=/(?:epoch|step)\b))?"
                    r"(?:/(?:epoch|step|s)\b)?(?!\w)")
MAX_FIGURE_GROUPS = 4  # distinct values of one figure listed; more are left to evidence.ranks


_UNITS = {"": 1.0, "B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "ms": 1e-3, "s": 1.0}


def _magnitude(figure: str) -> float:
    """A figure's value, for ordering (``+21.0 MiB/epoch`` -> 22020096.0, ``-3 B`` -> -3.0)."""
    match = re.match(r"([~+\-−]*)(\d[\d,]*(?:\.\d+)?)\s?(B|KiB|MiB|GiB|TiB|ms|s)?\b", figure)
    if match is None:
        return 0.0
    sign = -1.0 if ("-" in match.group(1) or "−" in match.group(1)) else 1.0
    return sign * float(match.group(2).replace(",", "")) * _UNITS.get(match.group(3) or "", 1.0)


def _figure_by_rank(by_value: dict[str, list[int]]) -> str:
    """One figure the ranks differ on: each value with its ranks (``+24.0 KiB/epoch (rank 0), +16.0
    KiB/epoch (rank 1)``); past ``MAX_FIGURE_GROUPS`` values, their span (``cuda:0–7 (by rank)``,
    ``+16.0 KiB/epoch to +96.0 KiB/epoch (by rank)``), each rank's left to evidence."""
    if len(by_value) <= MAX_FIGURE_GROUPS:
        return ", ".join(f"{value} ({rank_label(ranks)})" for value, ranks in by_value.items())
    if all(value.isdigit() for value in by_value):
        return f"{fmt_ranges(sorted(int(v) for v in by_value))} (by rank)"
    ordered = sorted(by_value, key=_magnitude)
    return f"{ordered[0]} to {ordered[-1]} (by rank)"


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
            out.append(_figure_by_rank(by_value))
        out.append(text)
    return "".join(out)


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
