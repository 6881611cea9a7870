"""Overlap check: evaluation data that the training loader also served.

Every DataLoader pass arrives as the set of base-dataset indices it served (resolved through
``Subset``, ``random_split`` and ``ConcatDataset``), labelled ``train`` or ``eval``. The check keeps,
per base dataset, the union of what training served and, per evaluation loader, what it served;
whenever a pass ends it compares them and reports, with exact counts:

- ``overlap/same-loader``: one DataLoader object used for both training and evaluation;
- ``overlap/train-eval``: an evaluation loader served base indices that training also served;
- ``overlap/duplicate-content`` (with ``fingerprint=True``): evaluation samples whose content is
  byte-identical to a training sample stored elsewhere (another dataset object or index);
- ``overlap/unchecked`` (info): a loader whose indices cannot be seen (``IterableDataset``,
  non-integer sampler keys) or a run that trained without any DataLoader.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.findings import Finding
from .indexset import IndexSet
from ..core.check import Check

EXAMPLES = 5
SPLIT_FIX = (
    "Split once, with one seeded generator: `train_ds, val_ds = random_split(ds, [n_train, n_val], "
    "generator=torch.Generator().manual_seed(0))`, and build each loader from its own part."
)


def _stream(info: Any) -> str:
    """The evaluation stream of a loader: its dataset (``LoaderInfo.dataset_id``), else the loader."""
    dataset_id = getattr(info, "dataset_id", None)
    return f"dataset{dataset_id}" if dataset_id is not None else str(info.loader_id)


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def train_eval_finding(*, overlap: int, eval_samples: int, train_samples: int, examples: list[int], eval_label: str,
                       train_label: str, base_label: str, evidence: dict[str, Any], where: str | None, key: str,
                       same_dataset: bool | None = None, note: str = "") -> Finding:
    """The ``overlap/train-eval`` finding: ``overlap`` of the ``eval_samples`` evaluated base indices were
    also served in training. The one rule for its words and evidence, on one process (``OverlapCheck``)
    and across ranks (``crossrank.TrainEvalAcrossRanks``, whose labels name the ranks).

    ``evidence`` holds the loaders and the base dataset as the caller knows them; the counts are added here.
    """
    message = (
        f"Validation overlaps training: {overlap} of {eval_samples} validation samples "
        f"({_pct(overlap, eval_samples)}) served by {eval_label} were also served by the training "
        f"loader {train_label} (base dataset {base_label}); e.g. indices {', '.join(map(str, examples))}."
    )
    if same_dataset:
        message += " Both loaders wrap the very same dataset object."
    if note:
        message += f" {note}"
    return Finding(
        code="overlap/train-eval",
        severity="error",
        message=message,
        fix=SPLIT_FIX,
        evidence={
            **evidence,
            "overlap": overlap,
            "eval_samples": eval_samples,
            "train_samples": train_samples,
            "fraction_of_eval": round(overlap / eval_samples, 6) if eval_samples else 0.0,
            "examples": examples,
            "same_dataset_object": same_dataset,
        },
        where=where,
        key=key,
    )


class OverlapCheck(Check):
    name = "overlap"

    def __init__(self, run: Any):
        super().__init__(run)
        self.train_union: dict[int, IndexSet] = {}
        self.train_by_loader: dict[tuple[str, int], IndexSet] = {}
        self.eval_by_loader: dict[tuple[str, int], IndexSet] = {}
        self.loaders: dict[str, Any] = {}
        self.bases: dict[int, Any] = {}
        self.unchecked_reported: set[str] = set()
        self.train_digests = np.empty(0, np.uint64)
        self.train_digest_owner = np.empty((0, 2), np.int64)  # (base key, base index), aligned
        self.eval_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # loader -> (digests, owners)

    # -- events -------------------------------------------------------------------------------------
    def on_loader_pass_end(self, event: Any) -> None:
        data, refs = event.data, event.refs or {}
        role = data["role"]
        if role not in ("train", "eval"):
            return
        info = refs["loader_info"]
        loader_id = info.loader_id
        self.loaders[loader_id] = info
        self.bases.update(refs.get("bases", {}))
        if data.get("unchecked"):
            self._report_unchecked(info, data["unchecked"])
        if "train" in info.roles and "eval" in info.roles:
            self._report_same_loader(info)

        self._forget_freed_datasets()
        served: dict[int, IndexSet] = refs.get("served", {})
        rows = refs.get("fingerprint_rows") or []
        if role == "train":
            for key, indices in served.items():
                self.train_union.setdefault(key, IndexSet()).update(indices)
                self.train_by_loader.setdefault((loader_id, key), IndexSet()).update(indices)
            self._add_train_fingerprints(rows)
            touched = set(served)
            for (eval_id, key) in list(self.eval_by_loader):
                if key in touched:
                    self._compare(eval_id, key)
            for eval_id in list(self.eval_rows):
                self._compare_content(eval_id)
        else:
            for key, indices in served.items():
                self.eval_by_loader.setdefault((loader_id, key), IndexSet()).update(indices)
                self._compare(loader_id, key)
            self._add_eval_fingerprints(loader_id, rows)
            self._compare_content(loader_id)

    def finish(self) -> None:
        if self.run.loop.steps > 0 and not self.run.loop.loaders:
            self.report(Finding(
                code="overlap/unchecked",
                severity="info",
                message=f"No DataLoader was iterated during this run ({self.run.loop.steps} optimizer steps), so "
                        "which samples were trained on and which were evaluated on could not be seen.",
                fix="Nothing to change if your pipeline keeps splits apart by construction; iterate a "
                    "torch DataLoader to have train/eval overlap checked.",
                evidence={"reason": "no-dataloader", "steps": self.run.loop.steps},
                key="no-dataloader",
            ))

    def _forget_freed_datasets(self) -> None:
        """Drop the served indices of base datasets that no longer exist: nothing can serve them again.

        Keys are never reused (see ``core.datasets.DatasetKeys``), so this only bounds memory when a loop builds
        its datasets inside the epoch loop.
        """
        freed = {key for key in self.train_union if self.bases[key].ref() is None}
        freed.update(key for _, key in self.eval_by_loader if self.bases[key].ref() is None)
        if not freed:
            return
        for key in freed:
            self.train_union.pop(key, None)
        for table in (self.train_by_loader, self.eval_by_loader):
            for pair in [pair for pair in table if pair[1] in freed]:
                del table[pair]

    # -- index overlap --------------------------------------------------------------------------------
    def _compare(self, eval_id: str, key: int) -> None:
        info = self.loaders[eval_id]
        if "train" in info.roles:
            return  # the same-loader finding says it all
        evaluated = self.eval_by_loader[(eval_id, key)]
        trained = self.train_union.get(key)
        if trained is None or not len(evaluated):
            return
        overlap = evaluated.intersection_count(trained)  # one pass over the bitmaps (O(size / 8) bytes)
        if overlap == 0:
            return
        both = evaluated & trained
        base = self.bases[key]
        train_loaders = [self.loaders[tid] for (tid, k), s in self.train_by_loader.items()
                         if k == key and s.intersection_count(evaluated)]
        self.report(train_eval_finding(
            overlap=overlap, eval_samples=len(evaluated), train_samples=len(trained), examples=both.first(EXAMPLES),
            eval_label=info.label, train_label=" and ".join(t.label for t in train_loaders) or "the training loader",
            base_label=base.label, same_dataset=self._same_dataset_object(info, train_loaders),
            evidence={"eval_loader": info.to_dict(), "train_loaders": [t.to_dict() for t in train_loaders],
                      "base_dataset": base.to_dict()},
            # One finding per evaluation stream: a DataLoader rebuilt for each evaluation over the same
            # dataset (the Hugging Face Trainer's, one per evaluate()) is one loader to the user.
            where=info.where, key=f"{_stream(info)}:{base.type_name}:{key}",
        ))

    @staticmethod
    def _same_dataset_object(info: Any, train_loaders: list[Any]) -> bool:
        loader = info.ref()
        if loader is None:
            return False
        for t in train_loaders:
            other = t.ref()
            if other is not None and other.dataset is loader.dataset:
                return True
        return False

    def _report_same_loader(self, info: Any) -> None:
        names = info.names
        if len(names) >= 2:  # outer frames name what the object is for: keep the two outermost names
            who = f"`{names[-2]}` and `{names[-1]}` are the same DataLoader object"
        else:
            who = f"{info.label} is one DataLoader object"
        evaluated = sum(len(s) for (lid, _), s in self.eval_by_loader.items() if lid == info.loader_id)
        self.report(Finding(
            code="overlap/same-loader",
            severity="error",
            message=f"{who}, used both for training and for evaluation: every evaluation sample was also a "
                    f"training sample ({info.dataset_type}, {info.dataset_size if info.dataset_size is not None else '?'} samples), "
                    "so validation metrics measure fit to the training data, not generalisation.",
            fix="Build the validation loader from a held-out split (`val_loader = DataLoader(val_ds, ...)`), "
                "never `val_loader = train_loader`. " + SPLIT_FIX,
            evidence={"loader": info.to_dict(), "eval_samples_seen": evaluated},
            where=info.where,
            key=info.loader_id,
        ))

    def _report_unchecked(self, info: Any, reason: str) -> None:
        if info.loader_id in self.unchecked_reported:
            return
        self.unchecked_reported.add(info.loader_id)
        why = {
            "iterable-dataset": f"it iterates an IterableDataset ({info.dataset_type}), which has no indices",
            "non-integer-indices": "its sampler yields keys that are not integer indices",
            "internal-error": "recording its indices failed",
        }.get(reason, reason)
        self.report(Finding(
            code="overlap/unchecked",
            severity="info",
            message=f"Train/eval overlap was not checked for {info.label}: {why}.",
            fix="Make sure training and evaluation read disjoint data (separate shards or files); "
                "a map-style Dataset with integer indices lets watchdog verify it.",
            evidence={"reason": reason, "loader": info.to_dict()},
            where=info.where,
            key=f"{info.loader_id}:{reason}",
        ))

    # -- content fingerprints ------------------------------------------------------------------------
    def _add_train_fingerprints(self, rows: list) -> None:
        if not rows:
            return
        digests = np.concatenate([self.train_digests] + [d for _, _, d in rows])
        owners = np.concatenate([self.train_digest_owner] + [np.stack([k, i], axis=1) for k, i, _ in rows])
        digests, first = np.unique(digests, return_index=True)
        self.train_digests, self.train_digest_owner = digests, owners[first]

    def _add_eval_fingerprints(self, loader_id: str, rows: list) -> None:
        if not rows:
            return
        old_d, old_o = self.eval_rows.get(loader_id, (np.empty(0, np.uint64), np.empty((0, 2), np.int64)))
        digests = np.concatenate([old_d] + [d for _, _, d in rows])
        owners = np.concatenate([old_o] + [np.stack([k, i], axis=1) for k, i, _ in rows])
        _, first = np.unique(owners, axis=0, return_index=True)
        self.eval_rows[loader_id] = (digests[first], owners[first])

    def _compare_content(self, eval_id: str) -> None:
        if eval_id not in self.eval_rows or self.train_digests.size == 0:
            return
        info = self.loaders[eval_id]
        if "train" in info.roles:
            return
        digests, owners = self.eval_rows[eval_id]
        pos = np.searchsorted(self.train_digests, digests)
        pos = np.minimum(pos, self.train_digests.size - 1)
        hit = self.train_digests[pos] == digests
        train_owner = self.train_digest_owner[pos]
        elsewhere = hit & np.any(train_owner != owners, axis=1)
        count = int(elsewhere.sum())
        if count == 0:
            return
        pairs = []
        for j in np.flatnonzero(elsewhere)[:EXAMPLES]:
            eb, ei = (int(x) for x in owners[j])
            tb, ti = (int(x) for x in train_owner[j])
            pairs.append({"eval": [self._base_name(eb), ei], "train": [self._base_name(tb), ti]})
        example = pairs[0]
        self.report(Finding(
            code="overlap/duplicate-content",
            severity="error",
            message=f"{count} of {len(digests)} evaluation samples of {info.label} ({_pct(count, len(digests))}) "
                    f"are byte-identical to training samples stored elsewhere; e.g. {example['eval'][0]}[{example['eval'][1]}] "
                    f"== {example['train'][0]}[{example['train'][1]}]. No index ties them together: the data "
                    "holds duplicates, or the same files were loaded twice.",
            fix="Deduplicate the raw data (hash each sample) before splitting, then split once.",
            evidence={"eval_loader": info.to_dict(), "duplicates": count, "eval_samples": int(len(digests)),
                      "examples": pairs},
            where=info.where,
            key=eval_id,
        ))

    def _base_name(self, key: int) -> str:
        base = self.bases.get(key)
        if base is None:
            return "dataset"
        return base.names[-1] if base.names else base.type_name
