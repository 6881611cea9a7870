"""Resolve the indices a DataLoader served to (base dataset, base index).

``Subset`` (nested, as ``random_split`` makes) and ``ConcatDataset`` are seen through; anything else
is a base dataset. All work is vectorised over one pass's indices at its end.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
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


class IndexResolver:
    """Maps dataset-level indices to base-dataset indices, caching each Subset's index array.

    Base datasets are keyed by the run's ``DatasetKeys`` (serial numbers, never an ``id()``: see
    there), so a freed dataset's indices are never attributed to a new one at its address.
    """

    def __init__(self, keys: DatasetKeys) -> None:
        self._subset_indices: dict[int, tuple[Any, np.ndarray]] = {}
        self.bases: dict[int, BaseInfo] = {}  # key -> base dataset (tied objects share one)
        self._by_identity: dict[str, BaseInfo] = {}  # DatasetIdentity.key -> the base first seen with it
        self.keys = keys

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
        """Drop the cached index arrays of freed ``Subset``s."""
        for address in [a for a, (ref, _) in self._subset_indices.items() if ref() is None]:
            del self._subset_indices[address]

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

    def _indices_of(self, subset: Subset) -> np.ndarray:
        key = id(subset)
        cached = self._subset_indices.get(key)
        if cached is not None and cached[0]() is subset and len(cached[1]) == len(subset.indices):
            return cached[1]
        arr = np.asarray(subset.indices, dtype=np.int64).reshape(-1)
        self._subset_indices[key] = (object_ref(subset), arr)
        return arr

    def resolve(self, dataset: Any, idx: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """``[(base key, positions in idx, base indices)]`` for dataset-level indices ``idx``."""
        out: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._resolve_into(dataset, idx, np.arange(idx.size), out)
        return out

    def _resolve_into(self, dataset: Any, idx: np.ndarray, pos: np.ndarray, out: list) -> None:
        if idx.size == 0:
            return
        if isinstance(dataset, Subset):
            table = self._indices_of(dataset)
            self._resolve_into(dataset.dataset, table[idx], pos, out)
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


def flatten_batches(batches: list[Any]) -> np.ndarray:
    """The sampled index batches of a pass as one int64 array.

    Raises ``TypeError`` when the sampler yielded keys that are not integers.
    """
    if not batches:
        return np.empty(0, dtype=np.int64)
    first = batches[0]
    if isinstance(first, (list, tuple)):
        if not all(_is_int(x) for x in first[:64]):
            raise TypeError(f"sampler yielded non-integer keys (e.g. {first[:1]!r})")
        total = sum(len(batch) for batch in batches)
        try:
            return np.fromiter(itertools.chain.from_iterable(batches), dtype=np.int64, count=total)
        except (TypeError, ValueError, OverflowError):
            raise TypeError("sampler yielded non-integer keys") from None
    if hasattr(first, "__array__") or hasattr(first, "numpy"):
        return np.concatenate([_int_array(np.asarray(b)) for b in batches])
    if not all(_is_int(x) for x in batches[:64]):
        raise TypeError(f"sampler yielded non-integer keys (e.g. {first!r})")
    return _int_array(np.asarray(batches))


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _int_array(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind not in "iu":
        raise TypeError(f"sampler yielded non-integer keys (e.g. {arr.reshape(-1)[:1].tolist()!r})")
    return arr.astype(np.int64, copy=False).reshape(-1)
