"""``distributed/unsharded-train-loader``: every rank trains on the same samples.

Under DDP each rank should train on its own shard (``DistributedSampler``). A training loader
without one serves the whole dataset on every rank: the job does ``world_size`` times the work for
one pass of data (the gradients are averaged over copies of the same batches). Each rank exports
the base indices its *first* training pass served per base dataset (``overlap/export.py``; later
epochs of a sharded loader cover other shards, so only the first pass is compared); the ranks'
sets are compared here, the base datasets tied across ranks by their identity.

The wasted factor is ``sum(samples served per rank) / |union|``: 1.0 for a sharded loader, the
number of ranks when every rank serves everything. ``DistributedSampler(drop_last=False)`` pads the
last shard with up to ``ranks - 1`` repeated indices: those are allowed, and the finding needs a
factor of at least ``WASTE_THRESHOLD``.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..core.findings import Finding
from ..overlap.crossrank import loaders_across_ranks, served_records
from ..overlap.indexset import IndexSet
from .crossrank import CrossRankCheck
from .merge import rank_label
from .records import RankRecord

CODE = "distributed/unsharded-train-loader"
WASTE_THRESHOLD = 1.5  # half a rank's work or more repeated: far above any padding, below 2 ranks' full copy

FIX = ("Shard the training data across ranks: `sampler = DistributedSampler(train_ds, shuffle=True)`, "
       "`train_loader = DataLoader(train_ds, batch_size=..., sampler=sampler)` (instead of shuffle=True), "
       "and call `sampler.set_epoch(epoch)` at the top of each epoch.")


class UnshardedTrainLoader(CrossRankCheck):
    """The ranks' first training passes over one base dataset serve the same indices."""

    name = "unsharded-train-loader"

    def check(self, records: Sequence[RankRecord]) -> Iterable[Finding]:
        exports, _ = served_records(records)
        bases: dict[str, dict[str, Any]] = {}
        for export in exports:
            bases.update(export.bases)
        for base_id in sorted(bases):
            firsts = {e.rank: (e.first_train[base_id], e.indices(e.first_train[base_id]))
                      for e in exports if base_id in e.first_train}
            if len(firsts) < 2:
                continue
            finding = self._compare(base_id, bases[base_id], firsts, records)
            if finding is not None:
                yield finding

    @staticmethod
    def _compare(base_id: str, base: dict[str, Any], firsts: dict[int, tuple[dict[str, Any], IndexSet]],
                 records: Sequence[RankRecord]) -> Finding | None:
        union = IndexSet()
        for _, indices in firsts.values():
            union.update(indices)
        per_rank = {rank: len(indices) for rank, (_, indices) in firsts.items()}
        total, distinct = sum(per_rank.values()), len(union)
        if not distinct:
            return None
        factor = total / distinct
        if total - distinct <= len(firsts) - 1 or factor < WASTE_THRESHOLD:
            return None
        ranks = sorted(firsts)
        loaders = {rank: [entry["loader"]] for rank, (entry, _) in firsts.items()}
        samplers = sorted({str(entry["loader"].get("sampler")) for entry, _ in firsts.values()})
        counts = (f"{per_rank[ranks[0]]} samples on each of {rank_label(ranks)}" if len(set(per_rank.values())) == 1
                  else f"{', '.join(str(per_rank[r]) for r in ranks)} samples on {rank_label(ranks)}")
        labels = {str(entry["loader"].get("label")) for entry, _ in firsts.values()}
        loader = " / ".join(sorted(labels)) if len(labels) > 1 else labels.pop()
        world = max((r.rank_info.get("world_size") or 0 for r in records), default=0) or len(ranks)
        return Finding(
            code=CODE,
            severity="error",
            message=f"{'Every rank trains on the same samples' if distinct == max(per_rank.values()) else 'The ranks train largely on the same samples'}: "
                    f"the first training pass of {loader} served {counts} "
                    f"of base dataset {base.get('label')}: {total} samples in all, {distinct} distinct, "
                    f"{factor:.1f}x the work for the same data. Its sampler ({' / '.join(samplers)}) does not "
                    f"shard the data across the {world} ranks.",
            fix=FIX,
            evidence={"wasted_factor": round(factor, 3), "samples_per_rank": {str(r): per_rank[r] for r in ranks},
                      "samples_total": total, "distinct_samples": distinct, "ranks": ranks, "world_size": world,
                      "samplers": samplers, "train_loaders": loaders_across_ranks(loaders),
                      "base_dataset": {"label": base.get("label"), "names": base.get("names"), "size": base.get("size"),
                                       "identity": base.get("identity")}},
            where=next(iter(loaders.values()))[0].get("where"),
            key=f"unsharded:{base_id}",
            ranks=ranks,
        )
