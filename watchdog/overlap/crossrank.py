"""Train/eval overlap across the ranks of a multi-process run (``overlap/train-eval``, merged).

Each rank's ``OverlapCheck`` sees only its own loaders. The classic multi-process bug is invisible
there: every rank calls its own unseeded ``random_split`` (ranks seeded differently, for their
augmentations), so rank 1 validates on samples rank 0 trains on, while each rank's own two parts are
disjoint. This check reads the ranks' exports (``export.py``: per role and base dataset, the base
indices served) and compares training on any rank with evaluation on any rank, per base dataset
(tied across ranks by its identity, ``core.datasets.dataset_identity``), with the words and evidence
of the one-process rule (``check.train_eval_finding``), the ranks named.

It supersedes the ranks' own ``overlap/train-eval`` findings: the union over ranks holds every
same-rank overlap too, so each base dataset gets one finding with the whole count instead of one
per rank plus one across ranks. A rank that left no export (it died before its first pass ended, or
its export failed: ``probe:served-export`` disabled) keeps its own findings, passed through.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..core.findings import Finding
from ..distributed.crossrank import CrossRankCheck
from ..distributed.merge import rank_label
from ..distributed.records import RankRecord
from .check import EXAMPLES, train_eval_finding
from .export import ServedExport, ServedRecord, read_served
from .indexset import IndexSet

CODE = "overlap/train-eval"


def served_records(records: Sequence[RankRecord]) -> tuple[list[ServedRecord], list[RankRecord]]:
    """The ranks' exports, and the ranks whose export is missing or was switched off."""
    exports, without = [], []
    for record in records:
        export = read_served(record.rank, record.folder)
        disabled = any(e.data.get("check") == f"probe:{ServedExport.name}" for e in record.of_kind("check_disabled"))
        if export is None or disabled:
            without.append(record)
        else:
            exports.append(export)
    return exports, without


def loaders_across_ranks(loaders_by_rank: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One entry per loader label across ranks (a loader named alike on several ranks once): the lowest
    rank's loader, with ``ranks`` and its ``label`` naming them (```val_loader` on ranks 0, 1``)."""
    entries: dict[str, dict[str, Any]] = {}
    for rank, loaders in sorted(loaders_by_rank.items()):
        for loader in loaders:
            label = str(loader.get("label") or loader.get("id"))
            entry = entries.setdefault(label, {**loader, "ranks": []})
            if rank not in entry["ranks"]:
                entry["ranks"].append(rank)
    for label, entry in entries.items():
        entry["label"] = f"{label} on {rank_label(entry['ranks'])}"
    return list(entries.values())


class TrainEvalAcrossRanks(CrossRankCheck):
    """Evaluation samples served on any rank that training served on any rank, per base dataset."""

    name = "overlap-across-ranks"
    supersedes = (CODE,)

    def check(self, records: Sequence[RankRecord]) -> Iterable[Finding]:
        exports, without = served_records(records)
        yield from self._passed_through(without)
        bases: dict[str, dict[str, Any]] = {}
        for export in exports:
            bases.update(export.bases)
        for base_id in sorted(bases):
            finding = self._compare(base_id, bases[base_id], exports)
            if finding is not None:
                yield finding

    @staticmethod
    def _passed_through(without: list[RankRecord]) -> Iterable[Finding]:
        """The ranks' own findings where the ranks left nothing to compare (each named by its rank)."""
        for record in without:
            for data in record.findings():
                if data.get("code") == CODE:
                    finding = Finding.from_dict(data)
                    finding.message = f"{rank_label([record.rank])}: {finding.message}"
                    finding.ranks = [record.rank]
                    yield finding

    def _compare(self, base_id: str, base: dict[str, Any], exports: list[ServedRecord]) -> Finding | None:
        trained = {e.rank: e.indices(e.served("train")[base_id]) for e in exports if base_id in e.served("train")}
        evaluated = {e.rank: e.indices(e.served("eval")[base_id]) for e in exports if base_id in e.served("eval")}
        if not trained or not evaluated:
            return None
        train_union, eval_union = IndexSet(), IndexSet()
        for s in trained.values():
            train_union.update(s)
        for s in evaluated.values():
            eval_union.update(s)
        both = eval_union & train_union
        overlap = len(both)
        if overlap == 0:
            return None
        eval_ranks = sorted(r for r, s in evaluated.items() if s.intersection_count(train_union))
        train_ranks = sorted(r for r, s in trained.items() if s.intersection_count(eval_union))
        # Per evaluating rank: its overlap with training on any rank, and with its own training alone.
        by_eval_rank = {str(r): evaluated[r].intersection_count(train_union) for r in eval_ranks}
        same_rank = sum(evaluated[r].intersection_count(trained[r]) for r in eval_ranks if r in trained)
        by_export = {e.rank: e for e in exports}
        eval_loaders = {r: by_export[r].served("eval")[base_id]["loaders"] for r in eval_ranks}
        train_loaders = {r: by_export[r].served("train")[base_id]["loaders"] for r in train_ranks}
        note = ""
        if same_rank == 0:  # each rank's own split is clean: only the ranks together overlap
            note = ("No rank evaluates samples it trained on itself: the ranks split the data differently "
                    "(each rank's own random_split, unseeded or seeded per rank, draws its own parts).")
        eval_entries, train_entries = loaders_across_ranks(eval_loaders), loaders_across_ranks(train_loaders)
        finding = train_eval_finding(
            overlap=overlap, eval_samples=len(eval_union), train_samples=len(train_union),
            examples=both.first(EXAMPLES), eval_label=" and ".join(e["label"] for e in eval_entries),
            train_label=" and ".join(e["label"] for e in train_entries), base_label=str(base.get("label")),
            evidence={"eval_loader": eval_entries[0], "eval_loaders": eval_entries, "train_loaders": train_entries,
                      "base_dataset": {"label": base.get("label"), "names": base.get("names"), "size": base.get("size"),
                                       "identity": base.get("identity")},
                      "eval_ranks": eval_ranks, "train_ranks": train_ranks, "by_eval_rank": by_eval_rank,
                      "same_rank_overlap": same_rank},
            where=next((ls[0].get("where") for ls in eval_loaders.values() if ls), None),
            key=f"ranks:{base_id}", note=note,
        )
        finding.ranks = sorted(set(eval_ranks) | set(train_ranks))
        return finding
