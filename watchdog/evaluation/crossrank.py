"""Evaluation cadence across the ranks of a ``torchrun`` job: an epoch counts as evaluated when any
rank evaluated it.

The usual loop evaluates on rank 0 only (``if dist.get_rank() == 0: evaluate()``) while the other
ranks wait: each of those ranks alone trained epochs without evaluation. Their own reports keep
that view as ``info`` (``cadence.py``); the merged report decides instead (this check supersedes the
ranks' ``eval/missing-epochs``, ``eval/only-at-end`` and ``eval/never``), by the same rule
(``rule.py``) applied to the union:

- **epochs**: epoch ``e`` is evaluated when any rank's ``eval_window`` verdict for ``e`` says so
  (every rank runs the same epochs under DDP; a rank that died judged fewer, and the ranks that
  went on judge the rest);
- **when evaluation ran** (for the words: never, only after training): the union of the ranks'
  evaluation steps from their ``eval_summary``; the held-out data any rank saw;
- **loops without epochs** are judged by steps on the union of the ranks' evaluation steps, when
  every rank completed (as on one process, a run cut short is not judged by steps).

A job in which no rank left a summary (every rank killed) is judged on the verdicts alone, in the
words used while a run is still going ("so far").
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..core.findings import Finding
from ..distributed.crossrank import CrossRankCheck
from ..distributed.merge import rank_label
from ..distributed.records import RankRecord
from .rule import (EVIDENCE_CAP, MIN_TRAINED_EPOCHS, CadenceRule, EvaluationFacts, missing_epochs_finding,
                   step_based_finding)

ACROSS_RANKS = " on any rank"


class EvalCadenceAcrossRanks(CrossRankCheck):
    """The cadence rule on the union of every rank's evaluated epochs and evaluation steps."""

    name = "eval-cadence-across-ranks"
    supersedes = ("eval/missing-epochs", "eval/only-at-end", "eval/never")

    def check(self, records: Sequence[RankRecord]) -> Iterable[Finding]:
        windows = {r.rank: _verdicts(r) for r in records}
        summaries = {r.rank: s for r in records if (s := _summary(r)) is not None}
        judged = sorted(rank for rank in windows if windows[rank] or rank in summaries)
        if not judged:
            return []
        every = _first(summaries, windows, "eval_every", default=1)
        rule = CadenceRule(every)
        epochs = max((len(w) for w in windows.values()), default=0)
        epoch_end_steps: list[int] = []
        evaluated_by: dict[str, list[int]] = {}
        for epoch in range(epochs):
            verdicts = {rank: w[epoch] for rank, w in windows.items() if epoch in w}
            evaluators = [rank for rank, v in verdicts.items() if v.get("evaluated")]
            for rank in evaluators:
                evaluated_by.setdefault(str(rank), []).append(epoch)
            epoch_end_steps.append(max(int(v.get("last_step") or 0) for v in verdicts.values()))
            rule.add(epoch, bool(evaluators))

        eval_steps = sorted({int(s) for s in _each(summaries, "eval_steps") if isinstance(s, int)})
        firsts = [int(s["first_eval"]) for s in summaries.values() if isinstance(s.get("first_eval"), int)]
        steps = max([int(s.get("steps") or 0) for s in summaries.values()]
                    + [int(v.get("last_step") or 0) for w in windows.values() for v in w.values()] + [0])
        held_out = list(dict.fromkeys(str(name) for name in _each(summaries, "held_out")))
        # Every rank of the job finished its check (none killed): the same condition as one process's `completed`.
        completed = bool(summaries) and len(summaries) == len(records) and all(
            s.get("completed") for s in summaries.values())
        label = rank_label(judged)

        if rule.epochs >= MIN_TRAINED_EPOCHS:
            if not rule.missing:
                return []
            first_eval = min(firsts) if firsts else None
            if not summaries and evaluated_by:  # no summary: the verdicts alone say that evaluation ran
                first_eval = min(epoch_end_steps[e] for e in rule.evaluated_epochs)
            facts = EvaluationFacts(
                steps=steps, first_eval=first_eval, eval_steps=eval_steps[:EVIDENCE_CAP], held_out=held_out,
                epoch_source=_first(summaries, windows, "epoch_source", default=None),
                epoch_end_steps=epoch_end_steps,
                where=next((s.get("where") for s in summaries.values() if s.get("where")), None))
            finding = missing_epochs_finding(rule, facts, final=bool(summaries), scope=ACROSS_RANKS)
        elif completed and steps > 0:
            finding = step_based_finding(steps, eval_steps, scope=ACROSS_RANKS)
            if finding is None:
                return []
        else:
            return []
        finding.message = f"{label}: {finding.message}"
        finding.ranks = judged
        finding.evidence["evaluated_by_rank"] = {rank: epochs[:EVIDENCE_CAP] for rank, epochs in evaluated_by.items()}
        finding.evidence["eval_steps_by_rank"] = {
            str(rank): list(s.get("eval_steps") or [])[:20] for rank, s in summaries.items()}
        finding.evidence["ranks_without_summary"] = [rank for rank in judged if rank not in summaries]
        return [finding]


def _verdicts(record: RankRecord) -> dict[int, dict[str, Any]]:
    """``{epoch: eval_window verdict}`` of one rank (the last verdict per epoch)."""
    found: dict[int, dict[str, Any]] = {}
    for event in record.of_kind("eval_window"):
        epoch = event.data.get("epoch")
        if isinstance(epoch, int) and epoch >= 0:
            found[epoch] = event.data
    return dict(sorted(found.items()))


def _summary(record: RankRecord) -> dict[str, Any] | None:
    return next((e.data for e in reversed(record.events) if e.kind == "eval_summary"), None)


def _each(summaries: dict[int, dict[str, Any]], key: str) -> list[Any]:
    return [item for s in summaries.values() for item in (s.get(key) or [])]


def _first(summaries: dict[int, dict[str, Any]], windows: dict[int, dict[int, dict[str, Any]]], key: str,
           default: Any) -> Any:
    """``key`` as the lowest rank logged it (every rank runs with the same options)."""
    for rank in sorted(set(summaries) | set(windows)):
        for data in ([summaries[rank]] if rank in summaries else []) + list(windows.get(rank, {}).values()):
            if data.get(key) is not None:
                return data[key]
    return default
