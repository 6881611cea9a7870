"""What one flush of the index capture may do, and the memory a pass holds (issue 14 item 3).

A flush's work is bounded in indices, never in time: while a Subset's index list is being converted
a flush holds ``FLUSH_INDICES_CONVERTING`` sampled indices, converts at most ``CONVERT_PER_FLUSH``
entries (by slices) and reads from the list one by one only its own indices past the converted part;
once the table is whole, nothing is read from the list again. A pass fills a byte per sample of a
base of at most ``BYTE_MAP_MAX`` samples, one bit per sample above. Counts and sizes, never
wall-clock times.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

import watchdog
from watchdog.overlap import capture, datasets, indexset
from watchdog.overlap.capture import PassIndices
from watchdog.overlap.indexset import IndexSet, IndexSetBuilder

from test_index_flushes import Indices  # the indices are the data


class ReadCountingList(list):
    """A Subset's index list counting its entries read one by one and by slices."""

    def __init__(self, items):
        super().__init__(items)
        self.single = self.sliced = 0

    def __getitem__(self, key):
        if isinstance(key, slice):
            self.sliced += len(range(*key.indices(len(self))))
        else:
            self.single += 1
        return super().__getitem__(key)


def flush_reads(monkeypatch, lst: ReadCountingList) -> list[tuple[int, int, int]]:
    """Per flush that moved indices: (indices flushed, entries read one by one, entries read by slices)."""
    out: list[tuple[int, int, int]] = []
    original = PassIndices.flush

    def flush(self, record, count):
        before, single, sliced = self.samples, lst.single, lst.sliced
        original(self, record, count)
        if self.samples > before:
            out.append((self.samples - before, lst.single - single, lst.sliced - sliced))

    monkeypatch.setattr(PassIndices, "flush", flush)
    return out


def test_a_flush_converts_and_reads_from_a_subsets_list_no_more_than_its_bounds(report_dir, monkeypatch):
    converting, steady, convert = 64, 1024, 500
    monkeypatch.setattr(capture, "FLUSH_INDICES_CONVERTING", converting)
    monkeypatch.setattr(capture, "FLUSH_INDICES", steady)
    monkeypatch.setattr(datasets, "CONVERT_PER_FLUSH", convert)
    n = 6000
    lst = ReadCountingList(torch.randperm(2 * n, generator=torch.Generator().manual_seed(0))[:n].tolist())
    loader = DataLoader(Subset(Indices(2 * n), lst), batch_size=16, shuffle=True, collate_fn=lambda b: b,
                        generator=torch.Generator().manual_seed(0))
    flushes = flush_reads(monkeypatch, lst)
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False):
        passes = []
        for _ in range(2):
            start = len(flushes)
            for _ in loader:
                pass
            passes.append(flushes[start:])
    first, second = passes
    converting_flushes = [f for f in first if f[1] or f[2]]
    # 12 flushes convert the list, or a few more (one whose indices reach no further converts less)
    assert n // convert <= len(converting_flushes) <= n // convert + 4
    assert all(sliced <= convert for _, _, sliced in first)
    assert all(single <= size for size, single, _ in first)  # at most its own indices, one by one
    assert all(size <= converting for size, single, _ in first if single)  # small while reading one by one
    assert first[0][0] == converting and first[-2][0] == steady
    assert sum(sliced for _, _, sliced in first + second) == n  # every entry converted once
    assert sum(single for _, single, _ in first) < n // 4  # the list is read one by one for a few only
    # the table is kept: the second pass converts at most the last entries the first did not reach
    assert all(single == sliced == 0 for _, single, sliced in second[1:])
    assert max(size for size, _, _ in second) == steady
    assert sum(size for size, _, _ in first) == sum(size for size, _, _ in second) == n


@pytest.mark.parametrize("size", [1000, 1001])
def test_a_pass_holds_a_byte_per_sample_up_to_the_byte_map_bound_and_a_bit_above(monkeypatch, size):
    monkeypatch.setattr(indexset, "BYTE_MAP_MAX", 1000)
    rng = np.random.default_rng(0)
    builder = IndexSetBuilder(size)
    assert builder.nbytes == (size if size <= 1000 else (size + 7) // 8)
    assert builder.nbytes <= max(indexset.BYTE_MAP_MAX, (size + 7) // 8)
    added = [rng.integers(0, size, 300) for _ in range(4)]
    for chunk in added:
        builder.add(chunk)
    built = builder.build()
    expected = IndexSet.from_indices(np.concatenate(added), size)
    assert len(built) == len(expected) == len(np.unique(np.concatenate(added)))
    assert built.intersection_count(expected) == len(expected)


def test_an_index_past_the_bases_size_turns_the_byte_map_into_bits():
    builder = IndexSetBuilder(100)
    builder.add(np.array([3, 99]))
    builder.add(np.array([250]))  # a dataset whose len() grew: no index is lost
    assert builder.nbytes <= 64  # bits now (32 bytes for 251 samples, grown in doublings)
    assert builder.build().first(5) == [3, 99, 250]


def test_a_sparse_add_by_blocks_sets_every_index_of_bytes_shared_within_and_across_blocks(monkeypatch):
    monkeypatch.setattr(indexset, "_ADD_BLOCK", 3)
    rng = np.random.default_rng(1)
    indices = np.concatenate([rng.integers(0, 1 << 20, 500), np.arange(64, 72), [64, 71, 5, 6, 7]])
    rng.shuffle(indices)
    s = IndexSet(1 << 20)
    s.add(indices.astype(np.int32))  # int32, as a Subset's table gives them
    expected = np.unique(indices)
    assert len(s) == expected.size
    assert s.first(expected.size) == expected.tolist()


def test_intersection_counts_span_the_blocks_they_are_counted_by():
    n = (1 << 23) * 2 + 77  # bitmaps of two 1 MB blocks and a tail
    rng = np.random.default_rng(2)
    a_idx, b_idx = rng.integers(0, n, 20_000), rng.integers(0, n + 1000, 20_000)
    shared = np.array([0, (1 << 23) - 1, 1 << 23, n - 1])  # at the blocks' edges
    a = IndexSet.from_indices(np.concatenate([a_idx, shared]), n)
    b = IndexSet.from_indices(np.concatenate([b_idx, shared]), n + 1000)
    expected = np.intersect1d(np.concatenate([a_idx, shared]), np.concatenate([b_idx, shared])).size
    assert a.intersection_count(b) == b.intersection_count(a) == len(a & b) == expected
