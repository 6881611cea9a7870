"""A compact set of non-negative dataset indices: one bit per sample, growable.

Bulk operations only: indices arrive as numpy arrays at a DataLoader pass's flushes, never one
by one on the per-batch path. Adding ``k`` indices costs O(k) (a scatter, by blocks of 16K
indices; a mask as large as the set only when ``k`` is at least 1/16 of its bits); the set
operations cost O(size / 8) bytes.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

_BIT = np.array([128, 64, 32, 16, 8, 4, 2, 1], dtype=np.uint8)
# Indices set per block by a sparse add: a block's bytes (16K cache lines, 1 MB) are still in the
# CPU's cache when its scatter is checked; a whole flush's (2**18) would be back in memory by then
# (a set of 100M samples, 12.5 MB, is not cached between flushes): ~15 instead of ~35 ns per index.
_ADD_BLOCK = 1 << 14


class IndexSet:
    __slots__ = ("_bits", "_count")

    def __init__(self, size_hint: int = 0):
        self._bits = np.zeros((max(size_hint, 0) + 7) // 8, dtype=np.uint8)
        self._count: int | None = 0

    @classmethod
    def from_indices(cls, indices: np.ndarray, size_hint: int = 0) -> "IndexSet":
        s = cls(size_hint)
        s.add(indices)
        return s

    @property
    def nbytes(self) -> int:
        return int(self._bits.nbytes)

    def _grow(self, nbits: int) -> None:
        need = (nbits + 7) // 8
        if need > self._bits.size:
            bigger = np.zeros(max(need, 2 * self._bits.size), dtype=np.uint8)
            bigger[: self._bits.size] = self._bits
            self._bits = bigger

    def add(self, indices: np.ndarray) -> None:
        indices = _int_indices(indices)
        if indices.size == 0:
            return
        if indices.min() < 0:
            raise ValueError("dataset indices must be non-negative")
        self._grow(int(indices.max()) + 1)
        nbits = self._bits.size * 8
        if indices.size * 16 >= nbits:  # dense: a bool mask and packbits (~3 ns/index)
            mask = np.zeros(nbits, dtype=bool)
            mask[indices] = True
            self._bits |= np.packbits(mask)
        else:  # sparse: scattered ORs, without a mask as large as the dataset
            for start in range(0, indices.size, _ADD_BLOCK):
                self._or_bits(indices[start : start + _ADD_BLOCK])
        self._count = None

    def _or_bits(self, indices: np.ndarray) -> None:
        """Set the bits of ``indices`` (at most ``_ADD_BLOCK`` of them: the bytes they touch stay in
        the CPU's cache between the scatter and its check, and no temporary is large)."""
        indices = indices.astype(np.intp, copy=False)  # else numpy casts them again at each scatter
        byte, bit = indices >> 3, _BIT[indices & 7]
        self._bits[byte] |= bit  # buffered: of two indices in one byte, only the last write lands
        lost = (self._bits[byte] & bit) == 0
        if lost.any():  # those few (one block's indices rarely share a byte), unbuffered
            np.bitwise_or.at(self._bits, byte[lost], bit[lost])

    def update(self, other: "IndexSet") -> None:
        if self._count == 0 and self._bits.size <= other._bits.size:  # empty: a copy, and its count
            self._bits = other._bits.copy()
            self._count = other._count
            return
        self._grow(other._bits.size * 8)
        self._bits[: other._bits.size] |= other._bits
        self._count = None

    def __len__(self) -> int:
        if self._count is None:
            self._count = _popcount(self._bits)
        return self._count

    def __contains__(self, index: int) -> bool:
        byte = index >> 3
        return 0 <= byte < self._bits.size and bool(self._bits[byte] & _BIT[index & 7])

    def __and__(self, other: "IndexSet") -> "IndexSet":
        n = min(self._bits.size, other._bits.size)
        out = IndexSet()
        out._bits = self._bits[:n] & other._bits[:n]
        out._count = None
        return out

    def intersection_count(self, other: "IndexSet") -> int:
        """The indices in both, counted 1 MB of bitmap at a time (no temporary as large as the sets:
        a fresh 12.5 MB array at each evaluation pass's end, for 100M samples, is faulted in anew)."""
        n = min(self._bits.size, other._bits.size)
        step = 1 << 20
        return sum(_popcount(self._bits[start : min(n, start + step)] & other._bits[start : min(n, start + step)])
                   for start in range(0, n, step))

    def first(self, k: int) -> list[int]:
        """The ``k`` smallest indices (deterministic examples for a message), read 64 KB at a time."""
        out: list[int] = []
        step = 1 << 16
        for start in range(0, self._bits.size, step):
            chunk = self._bits[start : start + step]
            if not chunk.any():
                continue
            out.extend(int(i) + start * 8 for i in np.flatnonzero(np.unpackbits(chunk))[: k - len(out)])
            if len(out) >= k:
                break
        return out[:k]

    # -- on disk (a multi-process run's ranks exchange their sets as files) ---------------------------
    def write_to(self, file: BinaryIO) -> int:
        """Write the bitmap (one bit per index, most significant bit first); returns the bytes written."""
        return file.write(memoryview(self._bits))

    @classmethod
    def from_buffer(cls, data: bytes) -> "IndexSet":
        """The set whose bitmap ``write_to`` wrote (``data``: the file's bytes)."""
        s = cls()
        s._bits = np.frombuffer(data, dtype=np.uint8).copy()
        s._count = None
        return s

    def copy(self) -> "IndexSet":
        s = IndexSet()
        s._bits = self._bits.copy()
        s._count = self._count
        return s


# Bases up to this many samples fill a byte map during a pass (``IndexSetBuilder``): 16 MB at most.
BYTE_MAP_MAX = 1 << 24


class IndexSetBuilder:
    """What one pass served of one base dataset, added flush by flush; ``build()`` gives the ``IndexSet``.

    For a base of at most ``BYTE_MAP_MAX`` samples, a byte per sample (16 MB at most): one scatter
    per flush (~1-5 ns per index, against ~15 ns for scattering bits by blocks), packed into bits once, at
    the pass's end (~1 ms per 4M samples). Above, or for a base of unknown size, the bitset itself
    (n / 8 bytes). An index past the base's size turns a byte map into a bitset.
    """

    __slots__ = ("_bytes", "_set")

    def __init__(self, size: int | None):
        self._bytes: np.ndarray | None = np.zeros(size, dtype=np.uint8) if size and size <= BYTE_MAP_MAX else None
        self._set: IndexSet | None = None if self._bytes is not None else IndexSet(size or 0)

    @property
    def nbytes(self) -> int:
        """What it holds: ``size`` bytes up to ``BYTE_MAP_MAX`` samples, ``size / 8`` above."""
        return int(self._bytes.nbytes) if self._bytes is not None else self._set.nbytes  # type: ignore[union-attr]

    def add(self, indices: np.ndarray) -> None:
        if self._bytes is None:
            self._set.add(indices)  # type: ignore[union-attr]
            return
        indices = _int_indices(indices)
        if indices.size == 0:
            return
        if indices.min() < 0:
            raise ValueError("dataset indices must be non-negative")
        if int(indices.max()) >= self._bytes.size:
            self._set = self.build()
            self._bytes = None
            self._set.add(indices)
            return
        self._bytes[indices] = 1

    def build(self) -> IndexSet:
        if self._bytes is None:
            return self._set  # type: ignore[return-value]
        built = IndexSet()
        built._bits = np.packbits(self._bytes)
        built._count = None
        return built


def _int_indices(indices: np.ndarray) -> np.ndarray:
    """``indices`` as a flat integer array, without a copy when it is one (int32 Subset tables stay int32)."""
    indices = np.asarray(indices).reshape(-1)
    return indices if indices.dtype.kind in "iu" else indices.astype(np.int64)


def _popcount(bits: np.ndarray) -> int:
    """The set bits of a contiguous uint8 array, counted 64 bits at a time (5x faster than per byte)."""
    whole = bits.size - bits.size % 8
    count = int(np.bitwise_count(bits[:whole].view(np.uint64)).sum()) if whole else 0
    return count + int(np.bitwise_count(bits[whole:]).sum())
