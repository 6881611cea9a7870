"""Resolve the indices a DataLoader served to (base dataset, base index).

``Subset`` (nested, as ``random_split`` makes) and ``ConcatDataset`` are seen through; anything else
is a base dataset. All work is vectorised over one flush's indices (at most ``capture.FLUSH_INDICES``),
and bounded by it: a Subset's index list is converted to an array once for the run, a bounded
chunk per flush (``SubsetTable``), never all at once; its indices past the converted part are read from
the list, at most one flush's worth (``capture.FLUSH_INDICES_CONVERTING`` while it converts).
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Subset

from ..core.datasets import DatasetIdentity, DatasetKeys, dataset_identity, dataset_len, object_ref


class AnyAlive:
    """Weak references to the dataset objects of one base: called, the first that is alive (or None)."""

    __slots__ = ("_refs",)

    def __init__(self, dataset: Any) -> None:
        self._refs = [object_ref(dataset)]

    def add(self, dataset: Any) -> None:
        self._refs = [ref for ref in self._refs if ref() is not None] + [object_ref(dataset)]

    def __call__(self) -> Any:
        for ref in self._refs:
            obj = ref()
            if obj is not None:
                return obj
        return None


@dataclass
class BaseInfo:
    """A base dataset: the one at the bottom of any Subset/ConcatDataset chain."""

    key: int
    type_name: str
    size: int | None
    ref: Any = field(repr=False)
    names: list[str] = field(default_factory=list)
    # The same on every rank holding the same data (``core.datasets.dataset_identity``): taken when
    # the base is first seen (a pass over it starts, before it serves a sample).
    identity: DatasetIdentity | None = None
    tied_objects: int = 1  # dataset objects of this process that hold this data (IndexResolver.base_info)

    def identify(self) -> DatasetIdentity | None:
        """The base's identity across processes, taken now if it was not yet (None once it is freed)."""
        if self.identity is None:
            dataset = self.ref()
            if dataset is not None:
                self.identity = dataset_identity(dataset)
        return self.identity

    @property
    def label(self) -> str:
        name = f"`{self.names[-1]}` " if self.names else ""
        size = f", {self.size} samples" if self.size is not None else ""
        objects = f"; {self.tied_objects} dataset objects holding the same data" if self.tied_objects > 1 else ""
        return f"{name}({self.type_name}{size}{objects})"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type_name, "size": self.size, "names": list(self.names)}
        if self.tied_objects > 1:
            data["objects"] = self.tied_objects
        return data


# Subset index entries converted per flush (fromiter over a slice of the list: 20-40 ns an entry, the
# same at any list size, the table's new pages included): 5-15 ms a flush; a 50M-entry list converts
# over 191 flushes. Those flushes also read the indices past the converted part from the list: they
# hold ``capture.FLUSH_INDICES_CONVERTING`` indices, so that both together stay under ~25 ms.
CONVERT_PER_FLUSH = 1 << 18
_INT32_MAX = (1 << 31) - 1


class SubsetTable:
    """One ``Subset``'s indices as an array, converted once for the run.

    A list or tuple (``random_split``'s Subsets hold lists) converts front to back, at most
    ``CONVERT_PER_FLUSH`` entries per flush and no further than the flush's indices reach
    (``convert``): converting a 50M-entry list at once would stall the loop
    for a second or more. Until it is whole, the indices past the converted part are read from the
    sequence itself (``indices[i]``, as the Subset reads them: a flush reads at most
    ``FLUSH_INDICES`` of them). An array, a tensor or a range converts at once (one copy at memory
    speed). Entries are int32 when the Subset's dataset has fewer than 2**31 samples (4 bytes per
    entry kept for the run), else int64.
    """

    __slots__ = ("source", "size", "array", "converted")

    def __init__(self, indices: Any, parent_size: int | None) -> None:
        self.source = indices
        self.size = len(indices)
        whole = _whole_array(indices)
        if whole is not None:
            self.array, self.converted = whole, self.size
        else:
            small = parent_size is not None and parent_size <= _INT32_MAX
            self.array = np.empty(self.size, dtype=np.int32 if small else np.int64)
            self.converted = 0

    def current_for(self, indices: Any) -> bool:
        """Whether this table is still the one of a Subset whose ``indices`` are these (a Subset whose
        list was replaced or grew is converted again)."""
        return indices is self.source and len(indices) == self.size

    @property
    def whole(self) -> bool:
        return self.converted == self.size

    def convert(self, budget: int) -> int:
        """Convert up to ``budget`` more entries; returns how many were converted."""
        start = self.converted
        stop = min(self.size, start + max(budget, 0))
        if stop <= start:
            return 0
        source = self.source
        try:
            self.array[start:stop] = np.fromiter(_entries(source, start, stop), self.array.dtype, stop - start)
        except OverflowError:  # an entry beyond int32: the table becomes int64
            self.array = self.array.astype(np.int64)
            self.array[start:stop] = np.fromiter(_entries(source, start, stop), np.int64, stop - start)
        self.converted = stop
        return stop - start

    def lookup(self, idx: np.ndarray) -> np.ndarray:
        """The entries at positions ``idx`` (each in ``[0, size)``): int32 or int64, as the table."""
        if self.converted == self.size:
            return self.array[idx]
        out = np.empty(idx.size, dtype=np.int64)
        inside = idx < self.converted
        out[inside] = self.array[idx[inside]]
        outside = ~inside
        rest = idx[outside]
        if rest.size == 1:
            out[outside] = self.source[int(rest[0])]
        elif rest.size:
            out[outside] = np.fromiter(operator.itemgetter(*rest.tolist())(self.source), np.int64, rest.size)
        return out

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)


def _entries(source: Any, start: int, stop: int) -> Any:
    if isinstance(source, (list, tuple)):
        return source[start:stop]
    return map(source.__getitem__, range(start, stop))


def _whole_array(indices: Any) -> np.ndarray | None:
    """``indices`` as an int64 array where that is one fast copy (array, tensor, range), else None."""
    if isinstance(indices, range):
        return np.arange(indices.start, indices.stop, indices.step, dtype=np.int64)
    if isinstance(indices, torch.Tensor):
        if indices.dtype.is_floating_point or indices.is_complex() or indices.dtype == torch.bool:
            return None
        return indices.detach().cpu().reshape(-1).numpy().astype(np.int64, copy=False)
    if isinstance(indices, np.ndarray) and indices.dtype.kind in "iu":
        return indices.reshape(-1).astype(np.int64, copy=False)
    return None


class IndexResolver:
    """Maps dataset-level indices to base-dataset indices, keeping each Subset's index table.

    Base datasets are keyed by the run's ``DatasetKeys`` (serial numbers, never an ``id()``: see
    there), so a freed dataset's indices are never attributed to a new one at its address.
    Subset tables (``SubsetTable``) are kept for the run, across its passes and epochs, while the
    Subset lives: each Subset's index list is converted once.
    """

    def __init__(self, keys: DatasetKeys) -> None:
        self._subset_tables: dict[int, tuple[Any, SubsetTable]] = {}  # id(subset) -> (ref, table)
        self.bases: dict[int, BaseInfo] = {}  # key -> base dataset (tied objects share one)
        self._by_identity: dict[str, BaseInfo] = {}  # DatasetIdentity.key -> the base first seen with it
        self.keys = keys
        self._budget = 0  # Subset entries this resolve() may still convert
        self.read_from_lists = 0  # indices this flush's resolve() calls read from Subsets' lists (past their tables)

    def base_info(self, dataset: Any) -> BaseInfo:
        """The base dataset ``dataset`` is, keyed once per object; an object that holds the same data
        as a live base seen before (equal ``dataset_identity``, read from its data, not only its
        scalars) is that base: a DataModule's ``setup()`` that loads the same files once per stage
        makes two objects of one dataset, and an unseeded split of each overlaps."""
        key = self.keys.key_of(dataset)
        info = self.bases.get(key)
        if info is None:
            identity = dataset_identity(dataset)
            tied = self._by_identity.get(identity.key) if identity.holds_data else None
            if tied is not None and tied.ref() is not None:
                tied.ref.add(dataset)
                tied.tied_objects += 1
                info = self.bases[key] = tied
            else:
                refs = AnyAlive(dataset)
                info = self.bases[key] = BaseInfo(key, type(dataset).__name__, dataset_len(dataset), refs,
                                                  identity=identity)
                if identity.holds_data:
                    self._by_identity[identity.key] = info
        return info

    def forget_freed(self) -> None:
        """Drop the index tables of freed ``Subset``s."""
        for address in [a for a, (ref, _) in self._subset_tables.items() if ref() is None]:
            del self._subset_tables[address]

    @property
    def table_bytes(self) -> int:
        """What the kept Subset tables hold (bytes)."""
        return sum(table.nbytes for _, table in self._subset_tables.values())

    def bases_of(self, dataset: Any) -> list[BaseInfo]:
        """The base datasets under ``dataset`` (without resolving any index)."""
        if isinstance(dataset, Subset):
            return self.bases_of(dataset.dataset)
        if isinstance(dataset, ConcatDataset):
            out: list[BaseInfo] = []
            for part in dataset.datasets:
                out.extend(self.bases_of(part))
            return out
        return [self.base_info(dataset)]

    def table_of(self, subset: Subset) -> SubsetTable:
        """The Subset's table (made on first use, made again if its ``indices`` were replaced)."""
        key = id(subset)
        cached = self._subset_tables.get(key)
        if cached is not None and cached[0]() is subset and cached[1].current_for(subset.indices):
            return cached[1]
        table = SubsetTable(subset.indices, dataset_len(subset.dataset))
        self._subset_tables[key] = (object_ref(subset), table)
        return table

    def begin_flush(self) -> None:
        """A flush starts: its ``resolve()`` calls convert at most ``CONVERT_PER_FLUSH`` Subset entries
        in all, and ``read_from_lists`` counts what they read past the tables."""
        self._budget = CONVERT_PER_FLUSH
        self.read_from_lists = 0

    def resolve(self, dataset: Any, idx: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """``[(base key, positions in idx, base indices)]`` for dataset-level indices ``idx``.

        Converts Subset entries out of the current flush's budget (``begin_flush``).
        """
        out: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._resolve_into(dataset, idx, np.arange(idx.size), out)
        return out

    def _resolve_into(self, dataset: Any, idx: np.ndarray, pos: np.ndarray, out: list) -> None:
        if idx.size == 0:
            return
        if isinstance(dataset, Subset):
            table = self.table_of(dataset)
            if (idx < 0).any():
                idx = np.where(idx < 0, idx + table.size, idx)
            if not table.whole:  # convert what these indices need, up to this flush's budget
                needed = int(idx.max()) + 1 - table.converted
                self._budget -= table.convert(min(self._budget, needed))
                if not table.whole:
                    self.read_from_lists += int(np.count_nonzero(idx >= table.converted))
            self._resolve_into(dataset.dataset, table.lookup(idx), pos, out)
        elif isinstance(dataset, ConcatDataset):
            cumulative = np.asarray(dataset.cumulative_sizes, dtype=np.int64)
            idx = np.where(idx < 0, idx + cumulative[-1], idx)
            part = np.searchsorted(cumulative, idx, side="right")
            for j in np.unique(part):
                sel = part == j
                offset = cumulative[j - 1] if j > 0 else 0
                self._resolve_into(dataset.datasets[int(j)], idx[sel] - offset, pos[sel], out)
        else:
            info = self.base_info(dataset)
            if info.size is not None and (idx < 0).any():
                idx = np.where(idx < 0, idx + info.size, idx)
            out.append((info.key, pos, idx))


def flatten_batches(batches: list[Any]) -> tuple[np.ndarray, int]:
    """The sampled index batches of a pass as one int64 array, and the longest batch's length.

    Raises ``TypeError`` when the sampler yielded keys that are not integers.
    """
    if not batches:
        return np.empty(0, dtype=np.int64), 0
    first = batches[0]
    if isinstance(first, (list, tuple)):
        if not all(_is_int(x) for x in first[:64]):
            raise TypeError(f"sampler yielded non-integer keys (e.g. {first[:1]!r})")
        lengths = list(map(len, batches))
        try:
            flat = np.fromiter(itertools.chain.from_iterable(batches), dtype=np.int64, count=sum(lengths))
        except (TypeError, ValueError, OverflowError):
            raise TypeError("sampler yielded non-integer keys") from None
        return flat, max(lengths)
    if hasattr(first, "__array__") or hasattr(first, "numpy"):
        arrays = [_int_array(np.asarray(b)) for b in batches]
        return np.concatenate(arrays), max(a.size for a in arrays)
    if not all(_is_int(x) for x in batches[:64]):
        raise TypeError(f"sampler yielded non-integer keys (e.g. {first!r})")
    return _int_array(np.asarray(batches)), 1


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _int_array(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind not in "iu":
        raise TypeError(f"sampler yielded non-integer keys (e.g. {arr.reshape(-1)[:1].tolist()!r})")
    return arr.astype(np.int64, copy=False).reshape(-1)
