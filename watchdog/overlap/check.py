"""Overlap check: evaluation data that the training loader also served.

Every DataLoader pass arrives as the set of base-dataset indices it served (resolved through
``Subset``, ``random_split`` and ``ConcatDataset``), labelled ``train`` or ``eval``. The check keeps,
per base dataset, the union of what training served and, per loader stream and role, what it
served; whenever a pass ends it compares them and reports, with exact counts:

- ``overlap/same-loader``: one DataLoader object used for both training and evaluation;
- ``overlap/train-eval``: an evaluation loader served base indices that training also served;
- ``overlap/duplicate-content`` (with ``fingerprint=True``): evaluation samples whose content is
  byte-identical to a training sample stored elsewhere (another dataset object or index);
- ``overlap/unchecked`` (info): a loader whose indices cannot be seen (``IterableDataset``,
  non-integer sampler keys) or a run that trained without any DataLoader.

A loader stream (``core.loaders.LoaderStreams``) is a loader as the user sees it: one DataLoader
object, or one rebuilt each epoch (``for epoch in ...: val_loader = DataLoader(val_ds)``). What a
rebuilt loader serves joins its stream's set (a union), so the check keeps one set per (role,
stream, base dataset), whatever the number of epochs (at 100M samples a set is 12.5 MB), and a
finding names the loader and counts as it would for a loader built once.
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


def _stream_id(info: Any) -> str:
    """The loader's stream (``core.loaders.LoaderStreams``: a loader rebuilt each epoch is one), by its id."""
    return info.stream.id if info.stream is not None else info.loader_id


def _first_loader_id(info: Any) -> str:
    """The id of its stream's first loader: what keys the findings about a loader (one per stream)."""
    return info.stream.first.loader_id if info.stream is not None else info.loader_id


def _label(info: Any) -> str:
    """The loader as a finding names it: its stream's label (the same for each rebuilt loader)."""
    return info.stream.label if info.stream is not None else info.label


def _loader_dict(info: Any) -> dict[str, Any]:
    """The loader in a finding's evidence: its stream's passes, and its objects when it was rebuilt."""
    return info.stream.loader_dict(info) if info.stream is not None else info.to_dict()


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
        self.train_union: dict[int, IndexSet] = {}  # base key -> what any training pass served
        # (stream id, base key) -> what the stream's training / evaluation passes served (a union)
        self.trained: dict[tuple[str, int], IndexSet] = {}
        self.evaluated: dict[tuple[str, int], IndexSet] = {}
        self.loaders: dict[tuple[str, str], Any] = {}  # (role, stream id) -> its newest LoaderInfo in that role
        self.bases: dict[int, Any] = {}
        self.unchecked_reported: set[str] = set()  # stream ids
        self.train_digests = np.empty(0, np.uint64)
        self.train_digest_owner = np.empty((0, 2), np.int64)  # (base key, base index), aligned
        self.eval_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # stream id -> (digests, owners)

    # -- events -------------------------------------------------------------------------------------
    def on_loader_pass_end(self, event: Any) -> None:
        data, refs = event.data, event.refs or {}
        role = data["role"]
        if role not in ("train", "eval"):
            return
        info = refs["loader_info"]
        stream = _stream_id(info)
        self.loaders[(role, stream)] = info
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
                self.trained.setdefault((stream, key), IndexSet()).update(indices)
            self._add_train_fingerprints(rows)
            touched = set(served)
            for (eval_stream, key) in list(self.evaluated):
                if key in touched:
                    self._compare(eval_stream, key)
            for eval_stream in list(self.eval_rows):
                self._compare_content(eval_stream)
        else:
            for key, indices in served.items():
                self.evaluated.setdefault((stream, key), IndexSet()).update(indices)
                self._compare(stream, key)
            self._add_eval_fingerprints(stream, rows)
            self._compare_content(stream)

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
        freed.update(key for _, key in self.evaluated if self.bases[key].ref() is None)
        if not freed:
            return
        for key in freed:
            self.train_union.pop(key, None)
        for table in (self.trained, self.evaluated):
            for pair in [pair for pair in table if pair[1] in freed]:
                del table[pair]

    # -- index overlap --------------------------------------------------------------------------------
    def _compare(self, eval_stream: str, key: int) -> None:
        info = self.loaders[("eval", eval_stream)]
        if "train" in info.roles:
            return  # the same-loader finding says it all
        evaluated = self.evaluated[(eval_stream, key)]
        trained = self.train_union.get(key)
        if trained is None or not len(evaluated):
            return
        overlap = evaluated.intersection_count(trained)  # one pass over the bitmaps (O(size / 8) bytes)
        if overlap == 0:
            return
        both = evaluated & trained
        base = self.bases[key]
        train_loaders = [self.loaders[("train", stream)] for (stream, k), s in self.trained.items()
                         if k == key and s.intersection_count(evaluated)]
        self.report(train_eval_finding(
            overlap=overlap, eval_samples=len(evaluated), train_samples=len(trained), examples=both.first(EXAMPLES),
            eval_label=_label(info),
            train_label=" and ".join(_label(t) for t in train_loaders) or "the training loader",
            base_label=base.label, same_dataset=self._same_dataset_object(info, train_loaders),
            evidence={"eval_loader": _loader_dict(info), "train_loaders": [_loader_dict(t) for t in train_loaders],
                      "base_dataset": base.to_dict()},
            # One finding per evaluation stream: a DataLoader rebuilt for each evaluation (the Hugging
            # Face Trainer's, one per evaluate(); a loop's, one per epoch) is one loader to the user.
            where=info.where, key=f"{_first_loader_id(info)}:{base.type_name}:{key}",
        ))

    @staticmethod
    def _same_dataset_object(info: Any, train_loaders: list[Any]) -> bool:
        """Whether a training loader iterated the very dataset object ``info`` iterates (by the run's
        dataset keys, never reused: still said once a loader rebuilt each epoch is freed)."""
        return any(t.dataset_id == info.dataset_id for t in train_loaders)

    def _report_same_loader(self, info: Any) -> None:
        names = info.names
        if len(names) >= 2:  # outer frames name what the object is for: keep the two outermost names
            who = f"`{names[-2]}` and `{names[-1]}` are the same DataLoader object"
        else:
            who = f"{_label(info)} is one DataLoader object"
        stream = _stream_id(info)
        evaluated = sum(len(s) for (sid, _), s in self.evaluated.items() if sid == stream)
        self.report(Finding(
            code="overlap/same-loader",
            severity="error",
            message=f"{who}, used both for training and for evaluation: every evaluation sample was also a "
                    f"training sample ({info.dataset_type}, {info.dataset_size if info.dataset_size is not None else '?'} samples), "
                    "so validation metrics measure fit to the training data, not generalisation.",
            fix="Build the validation loader from a held-out split (`val_loader = DataLoader(val_ds, ...)`), "
                "never `val_loader = train_loader`. " + SPLIT_FIX,
            evidence={"loader": _loader_dict(info), "eval_samples_seen": evaluated},
            where=info.where,
            key=_first_loader_id(info),  # one finding per stream (a loader rebuilt each epoch is one)
        ))

    def _report_unchecked(self, info: Any, reason: str) -> None:
        stream = _stream_id(info)
        if stream in self.unchecked_reported:
            return
        self.unchecked_reported.add(stream)
        why = {
            "iterable-dataset": f"it iterates an IterableDataset ({info.dataset_type}), which has no indices",
            "non-integer-indices": "its sampler yields keys that are not integer indices",
            "internal-error": "recording its indices failed",
        }.get(reason, reason)
        self.report(Finding(
            code="overlap/unchecked",
            severity="info",
            message=f"Train/eval overlap was not checked for {_label(info)}: {why}.",
            fix="Make sure training and evaluation read disjoint data (separate shards or files); "
                "a map-style Dataset with integer indices lets watchdog verify it.",
            evidence={"reason": reason, "loader": _loader_dict(info)},
            where=info.where,
            key=f"{_first_loader_id(info)}:{reason}",
        ))

    # -- content fingerprints ------------------------------------------------------------------------
    def _add_train_fingerprints(self, rows: list) -> None:
        if not rows:
            return
        digests = np.concatenate([self.train_digests] + [d for _, _, d in rows])
        owners = np.concatenate([self.train_digest_owner] + [np.stack([k, i], axis=1) for k, i, _ in rows])
        digests, first = np.unique(digests, return_index=True)
        self.train_digests, self.train_digest_owner = digests, owners[first]

    def _add_eval_fingerprints(self, stream: str, rows: list) -> None:
        if not rows:
            return
        old_d, old_o = self.eval_rows.get(stream, (np.empty(0, np.uint64), np.empty((0, 2), np.int64)))
        digests = np.concatenate([old_d] + [d for _, _, d in rows])
        owners = np.concatenate([old_o] + [np.stack([k, i], axis=1) for k, i, _ in rows])
        _, first = np.unique(owners, axis=0, return_index=True)
        self.eval_rows[stream] = (digests[first], owners[first])

    def _compare_content(self, eval_stream: str) -> None:
        if eval_stream not in self.eval_rows or self.train_digests.size == 0:
            return
        info = self.loaders[("eval", eval_stream)]
        if "train" in info.roles:
            return
        digests, owners = self.eval_rows[eval_stream]
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
            message=f"{count} of {len(digests)} evaluation samples of {_label(info)} ({_pct(count, len(digests))}) "
                    f"are byte-identical to training samples stored elsewhere; e.g. {example['eval'][0]}[{example['eval'][1]}] "
                    f"== {example['train'][0]}[{example['train'][1]}]. No index ties them together: the data "
                    "holds duplicates, or the same files were loaded twice.",
            fix="Deduplicate the raw data (hash each sample) before splitting, then split once.",
            evidence={"eval_loader": _loader_dict(info), "duplicates": count, "eval_samples": int(len(digests)),
                      "examples": pairs},
            where=info.where,
            key=_first_loader_id(info),
        ))

    def _base_name(self, key: int) -> str:
        base = self.bases.get(key)
        if base is None:
            return "dataset"
        return base.names[-1] if base.names else base.type_name
