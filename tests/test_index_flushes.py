"""Index work bounded whatever the dataset size (issue 14 item 3).

A pass's sampled indices are flushed (converted, resolved, added to its bitsets) every
``FLUSH_INDICES`` indices, whatever the batch size; a Subset's index list is converted once for the
run, a bounded chunk per flush; the overlap counts are the same whatever the flush and chunk sizes.
Counts, never wall-clock times.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler, ConcatDataset, DataLoader, Dataset, RandomSampler, Subset, random_split

import watchdog
from tests.loops import evaluate, make_dataset, make_model, train_epoch
from watchdog.overlap import capture, datasets
from watchdog.overlap.capture import FLUSH_INDICES, FLUSH_INDICES_CONVERTING, PassIndices
from watchdog.overlap.indexset import IndexSet


class Indices(Dataset):
    """The indices are the data: a batch costs one tensor, so long passes stay quick."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, idx):
        return torch.as_tensor(idx)

    def __getitem__(self, i):
        return i


def record_flushes(monkeypatch) -> list[tuple[str, int]]:
    """(loader id, indices flushed) for each flush that moved indices, in order."""
    flushes: list[tuple[str, int]] = []
    original = PassIndices.flush

    def flush(self, record, count):
        before = self.samples
        original(self, record, count)
        if self.samples > before:
            flushes.append((record.loader.loader_id, self.samples - before))

    monkeypatch.setattr(PassIndices, "flush", flush)
    return flushes


def flushed_sizes(flushes: list[tuple[str, int]], loader_id: str) -> list[int]:
    return [n for lid, n in flushes if lid == loader_id]


def small_flushes(monkeypatch, converting: int = 1 << 11, steady: int = 1 << 14) -> tuple[int, int]:
    """Smaller flushes than the defaults (2**15 and 2**18 indices), so that passes stay short."""
    monkeypatch.setattr(capture, "FLUSH_INDICES_CONVERTING", converting)
    monkeypatch.setattr(capture, "FLUSH_INDICES", steady)
    return converting, steady


def test_huge_and_tiny_batches_flush_at_the_same_index_counts(report_dir, monkeypatch):
    converting, steady = small_flushes(monkeypatch)
    flushes = record_flushes(monkeypatch)
    n = converting + 3 * steady + 1000
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False):
        for batch_size in (1024, 3):
            for _ in DataLoader(Indices(n), batch_size=batch_size, shuffle=True, collate_fn=lambda b: b):
                pass
    huge, tiny = flushed_sizes(flushes, "L1"), flushed_sizes(flushes, "L2")
    assert sum(huge) == sum(tiny) == n
    # Before: a flush every 4096 batches: one of all n at the end for batches of 1024, 12288 indices for 3.
    # The first flush is the small one (a Subset's list might need reading), the next ones are not.
    assert huge[:4] == [converting] + [steady] * 3
    assert tiny[:4] == [converting // 3 * 3] + [steady // 3 * 3] * 3
    assert len(huge) == len(tiny) == 5  # and the rest at the pass's end


def test_a_batch_sampler_of_unknown_size_is_flushed_by_indices_once_its_first_batch_is_seen(report_dir, monkeypatch):
    converting, steady = small_flushes(monkeypatch)
    flushes = record_flushes(monkeypatch)
    n = 4 * steady
    sampler = BatchSampler(RandomSampler(range(n)), batch_size=100, drop_last=False)

    class Batches:  # the user's own batch sampler: watchdog does not know its batch size
        def __iter__(self):
            return iter(sampler)

        def __len__(self):
            return len(sampler)

    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False):
        for _ in DataLoader(Indices(n), batch_sampler=Batches(), collate_fn=lambda b: b):
            pass
    sizes = flushed_sizes(flushes, "L1")
    assert sizes[0] == 100  # the first batch tells the size
    assert len(sizes) > 3 and all(size == steady // 100 * 100 for size in sizes[1:-1])  # 163 batches of 100
    assert sum(sizes) == n


def test_a_pass_of_single_indices_is_flushed_by_indices(report_dir, monkeypatch):
    converting, steady = small_flushes(monkeypatch)
    flushes = record_flushes(monkeypatch)
    n = converting + steady + 10
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False):
        for _ in DataLoader(Indices(n), batch_size=None):
            pass
    assert flushed_sizes(flushes, "L1") == [1, steady, converting + 9]


def test_flushes_stay_small_while_a_subsets_list_is_being_converted(report_dir, monkeypatch):
    converting, steady = small_flushes(monkeypatch, converting=512, steady=4096)
    monkeypatch.setattr(datasets, "CONVERT_PER_FLUSH", 5000)
    flushes = record_flushes(monkeypatch)
    subset = Subset(Indices(40_000), torch.randperm(40_000)[:20_000].tolist())
    loader = DataLoader(subset, batch_size=64, shuffle=True, collate_fn=lambda b: b)
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False):
        for _ in range(2):
            for _ in loader:
                pass
    first, second = flushed_sizes(flushes, "L1")[:9], flushed_sizes(flushes, "L1")[9:]
    # 5000 entries converted per flush: the 4th flush finds the list whole, the 5th is a steady one
    assert first[:5] == [converting] * 4 + [steady]
    assert second[:3] == [converting, steady, steady]  # the table is kept: one small flush only
    assert sum(first) == sum(second) == 20_000


class CountingList(list):
    """A Subset's index list that counts the entries read by slicing (watchdog's conversion)."""

    def __init__(self, items):
        super().__init__(items)
        self.sliced = 0

    def __getitem__(self, key):
        if isinstance(key, slice):
            self.sliced += len(range(*key.indices(len(self))))
        return super().__getitem__(key)


def _leaky_epochs(report_dir, epochs: int = 3):
    """random_split Subsets (lists counted), a nested Subset and an evaluation set leaking 37
    training samples, one of them by a negative index; a new loader each epoch."""
    ds = make_dataset(3000)
    train, val = random_split(ds, [2000, 1000], generator=torch.Generator().manual_seed(0))
    train.indices = CountingList(train.indices)
    val.indices = CountingList(val.indices)
    inner = Subset(val, CountingList(range(0, 1000, 2)))  # a Subset of a Subset
    leak = CountingList(train.indices[:36] + [train.indices[36] - len(ds)])  # a negative index is the same sample
    leaky_eval = ConcatDataset([inner, Subset(ds, leak)])
    lists = [train.indices, val.indices, inner.indices, leak]
    for lst in lists:
        lst.sliced = 0  # the slice above is the test's, not watchdog's
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False) as run:
        for _ in range(epochs):
            train_epoch(model, DataLoader(train, batch_size=32, shuffle=True), optimizer)
            evaluate(model, DataLoader(leaky_eval, batch_size=50, shuffle=True))
    return run, lists


def test_a_subsets_index_list_is_converted_once_across_passes_and_epochs(report_dir, monkeypatch):
    small_flushes(monkeypatch, converting=64, steady=256)  # many flushes per pass
    monkeypatch.setattr(datasets, "CONVERT_PER_FLUSH", 300)  # the conversion spans flushes and passes
    run, lists = _leaky_epochs(report_dir)
    # every entry read once in all; of `val`'s, the 999 that the nested Subset's indices reach
    assert [lst.sliced for lst in lists] == [2000, 999, 500, 37]
    assert [f.evidence["overlap"] for f in run.findings if f.code == "overlap/train-eval"] == [37]


@pytest.mark.parametrize("flush_indices,convert", [(FLUSH_INDICES, datasets.CONVERT_PER_FLUSH), (7, 5), (1, 1)])
def test_overlap_counts_are_the_same_whatever_the_flush_and_conversion_sizes(report_dir, monkeypatch,
                                                                                flush_indices, convert):
    small_flushes(monkeypatch, converting=min(flush_indices, FLUSH_INDICES_CONVERTING), steady=flush_indices)
    monkeypatch.setattr(datasets, "CONVERT_PER_FLUSH", convert)
    run, lists = _leaky_epochs(report_dir, epochs=2)
    train_eval = [f.evidence for f in run.findings if f.code == "overlap/train-eval"]
    assert len(train_eval) == 1
    train_indices = lists[0]
    expected = sorted(train_indices[:37])
    assert train_eval[0]["overlap"] == 37
    assert train_eval[0]["eval_samples"] == 500 + 37
    assert train_eval[0]["train_samples"] == 2000
    assert train_eval[0]["examples"] == expected[:5]


def test_tensor_array_and_range_subset_indices_resolve_like_lists(report_dir):
    ds = make_dataset(400)
    train_idx = list(range(0, 300))
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    evaluated = {"tensor": torch.tensor([299, 300, 301]), "array": np.array([298, 350], dtype=np.int32),
                 "range": range(297, 400, 50)}
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False) as run:
        train_epoch(model, DataLoader(Subset(ds, train_idx), batch_size=32, shuffle=True), optimizer)
        for indices in evaluated.values():
            evaluate(model, DataLoader(Subset(ds, indices), batch_size=2))
    overlaps = sorted(f.evidence["overlap"] for f in run.findings if f.code == "overlap/train-eval")
    assert overlaps == [1, 1, 1]  # 299; 298; 297 (347 and 397 are held out)


def test_sparse_adds_keep_every_index_of_a_shared_byte():
    s = IndexSet(1 << 20)
    indices = np.array([8, 9, 15, 8, 1 << 19, (1 << 19) + 7, 3], dtype=np.int64)  # bytes 1 and 65536 shared
    s.add(indices)  # sparse: 7 indices in a million bits
    assert len(s) == 6
    assert s.first(10) == [3, 8, 9, 15, 1 << 19, (1 << 19) + 7]
    assert all(i in s for i in indices)


def test_first_examples_span_the_chunks_it_reads():
    s = IndexSet.from_indices(np.array([5, (1 << 16) * 8 + 1, (3 << 16) * 8 + 2], dtype=np.int64))
    assert s.first(2) == [5, (1 << 16) * 8 + 1]
    assert s.first(5) == [5, (1 << 16) * 8 + 1, (3 << 16) * 8 + 2]
