"""Datasets as the run sees them: a key that no other dataset of the run ever gets, a size, a reference,
and an identity that holds across processes (``dataset_identity``).

The DataLoader probe keys each loader's dataset here (``LoaderInfo.dataset_id``: a new loader each
epoch over the same dataset is one stream), and hands the same ``DatasetKeys`` to the features'
pass captures, so every dataset of a run has one key whoever asks.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import sys
import weakref
from dataclasses import dataclass
from typing import Any


def object_ref(obj: Any) -> Any:
    """A weak reference to ``obj``; a strong one (kept for the run) where weakrefs are not supported."""
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj  # no weakref support: keep it (documented)


def dataset_len(dataset: Any) -> int | None:
    try:
        return int(len(dataset))
    except Exception:
        return None


class DatasetKeys:
    """A dataset's key: a serial number given the first time it is seen, never its ``id()``.

    A dataset built inside the epoch loop is freed after its pass, and the next one often gets the
    same address. A new object at a known address gets a new key, so nothing recorded about the
    freed dataset is ever attributed to it. (A dataset without weakref support is kept alive for
    the run, so its address cannot be reused.)
    """

    def __init__(self) -> None:
        self._keys: dict[int, tuple[Any, int]] = {}  # id(dataset) -> (ref, key), while it lives
        self._serials = itertools.count(1)

    def key_of(self, dataset: Any) -> int:
        """The dataset's key: a serial number that no other dataset of this run ever gets."""
        address = id(dataset)
        known = self._keys.get(address)
        if known is not None and known[0]() is dataset:
            return known[1]
        key = next(self._serials)
        self._keys[address] = (object_ref(dataset), key)
        return key

    def forget_freed(self) -> None:
        """Drop the address entries of freed datasets (their keys are never given again)."""
        for address in [a for a, (ref, _) in self._keys.items() if ref() is None]:
            del self._keys[address]


# -- one dataset across processes --------------------------------------------------------------------
# What the content fingerprint reads, at most: attributes per object, items per list, elements per
# array (half evenly spaced, half at positions fixed by the array's size), nesting depth.
_MAX_ATTRIBUTES = 64
_LIST_ITEMS = 5
_ARRAY_ELEMENTS = 128
_MAX_DEPTH = 3
_TEXT_BYTES = 512


@dataclass(frozen=True)
class DatasetIdentity:
    """A base dataset's identity across processes: the same on every rank that holds the same data.

    On each rank of a multi-process run the same base dataset is a different object (no ``id()``
    or ``DatasetKeys`` key is shared), so it is named by what it holds: its class, its length and a
    content fingerprint. ``key`` ties datasets: equal keys mean the same data (a false tie needs the
    same class and length *and* the same sampled bytes, lengths, paths and scalars);
    ``content`` says whether any content was read (False: the class and the length alone, for a
    dataset with no attributes to read).

    Taken without calling ``__getitem__`` (which may draw from the RNG: a watched run must keep the
    same RNG stream) and without reading more than a few hundred bytes per attribute: a tensor's or
    array's shape, dtype and ``_ARRAY_ELEMENTS`` of its elements (gathered, never copied whole);
    strings, paths and numbers in full (strings up to ``_TEXT_BYTES``); a list's length and
    ``_LIST_ITEMS`` of its items; nested datasets and objects (``_MAX_DEPTH`` levels) by their own
    attributes; other objects (transforms, file handles) by their type only. The user's variable
    name is not part of it: a name is found lazily, in frames that differ from rank to rank. A
    dataset whose attributes cannot be read gets a fingerprint no other object or process shares.
    """

    type: str
    size: int | None
    fingerprint: str
    content: bool
    # Whether it read the data itself (tensors', arrays' or lists' items, strings or paths), not only
    # scalars: only such an identity ties two dataset objects of one process (``content`` alone may
    # be a size and a flag of a dataset that generates its samples).
    holds_data: bool = False

    @property
    def key(self) -> str:
        return f"{self.type}:{self.size}:{self.fingerprint}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "size": self.size, "fingerprint": self.fingerprint, "content": self.content}


def dataset_identity(dataset: Any) -> DatasetIdentity:
    """``dataset``'s identity across processes (see ``DatasetIdentity``); never calls ``__getitem__``."""
    digest = hashlib.blake2b(digest_size=8)
    reader = _ContentReader(digest)
    cls = type(dataset)
    try:
        reader.attributes(dataset, 0)
        fingerprint = digest.hexdigest()
    except Exception:  # an attribute that cannot be read: an identity no other process shares (no false tie)
        fingerprint, reader.read_any = f"unreadable-{os.getpid()}-{id(dataset):x}", False
    return DatasetIdentity(type=f"{cls.__module__}.{cls.__qualname__}", size=dataset_len(dataset),
                           fingerprint=fingerprint, content=reader.read_any,
                           holds_data=reader.read_any and reader.read_data)


class _ContentReader:
    """Feeds a bounded sample of an object's content into a digest (``dataset_identity``'s walk)."""

    def __init__(self, digest: Any) -> None:
        self.digest = digest
        self.read_any = False
        self.read_data = False  # tensors, arrays, strings, paths or list items: not only scalars
        self._seen: set[int] = set()

    def _feed(self, *parts: Any) -> None:
        for part in parts:
            data = part if isinstance(part, bytes) else str(part).encode("utf-8", "backslashreplace")
            self.digest.update(len(data).to_bytes(4, "little"))
            self.digest.update(data)

    def attributes(self, obj: Any, depth: int) -> None:
        try:
            namespace = vars(obj)
        except TypeError:
            return
        names = sorted(name for name in namespace if isinstance(name, str))[:_MAX_ATTRIBUTES]
        for name in names:
            self._feed("attr", name)
            self.value(namespace[name], depth + 1)

    def value(self, value: Any, depth: int) -> None:
        if value is None or isinstance(value, (bool, int, float, complex)):
            self._feed(type(value).__name__, repr(value))
            self.read_any = True
        elif isinstance(value, (str, bytes, os.PathLike)):
            text = os.fspath(value) if isinstance(value, os.PathLike) else value
            self._feed(type(value).__name__, text[:_TEXT_BYTES], len(text))
            self.read_any = self.read_data = True
        elif _is_tensor(value) or _is_ndarray(value):
            self._feed(type(value).__name__, tuple(value.shape), str(value.dtype))
            self._feed(_sampled_elements(value))
            self.read_any = True
            self.read_data = self.read_data or bool(getattr(value, "size", 0) if _is_ndarray(value) else value.numel())
        elif isinstance(value, (list, tuple)):
            self._feed(type(value).__name__, len(value))
            self.read_any = True
            if depth < _MAX_DEPTH:
                for position in _spread(len(value), _LIST_ITEMS):
                    self.value(value[position], depth + 1)
        elif isinstance(value, (dict, set, frozenset)) or callable(value):
            self._feed(type(value).__qualname__)  # caches fill as a rank reads: their content differs by rank
        elif depth < _MAX_DEPTH and id(value) not in self._seen:
            self._seen.add(id(value))
            self._feed(type(value).__qualname__)
            self.attributes(value, depth)
        else:
            self._feed(type(value).__qualname__)


def _spread(n: int, k: int) -> list[int]:
    """Up to ``k`` positions spread evenly over ``range(n)``, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _is_ndarray(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


@functools.lru_cache(maxsize=64)
def _sample_positions(shape: tuple[int, ...], numel: int) -> tuple[Any, ...]:
    """The coordinates ``_sampled_elements`` gathers in an array of ``shape``: a function of the shape
    alone, so kept (a script's runs read the same datasets' arrays). Never written to."""
    import numpy as np

    half = min(_ARRAY_ELEMENTS // 2, numel)
    even = np.linspace(0, numel - 1, num=half).astype(np.int64)
    drawn = np.random.default_rng(numel).integers(0, numel, size=half, dtype=np.int64)
    return tuple(np.unravel_index(np.concatenate([even, drawn]), shape)) if shape else ()


def _sampled_elements(array: Any) -> bytes:
    """The bytes of ``_ARRAY_ELEMENTS`` elements of a tensor or array, gathered without copying it whole.

    Half are evenly spaced over the flattened array, half at positions drawn by a numpy Generator
    seeded with the array's size (its own generator: no global RNG is touched), so the same array
    gives the same bytes on every rank while a regular layout (zero borders) cannot hide a difference.
    """
    import numpy as np

    shape = tuple(int(n) for n in array.shape)
    numel = int(np.prod(shape)) if shape else 1
    if numel == 0:
        return b""
    try:
        coords = _sample_positions(shape, numel)
        if _is_tensor(array):
            import torch

            if array.device.type == "cpu" and array.layout == torch.strided:
                try:  # a CPU tensor's memory seen by numpy (no copy): the same elements, ~20x cheaper to gather
                    view = array.detach().numpy()
                except (TypeError, RuntimeError):  # a dtype numpy lacks (bfloat16), a conjugate or negative view
                    view = None
                if view is not None:
                    gathered = view[coords] if shape else view.reshape(1)
                    return np.ascontiguousarray(gathered).tobytes()
            index = tuple(torch.from_numpy(c).to(array.device) for c in coords)
            gathered = array.detach()[index] if shape else array.detach().reshape(1)
            return gathered.contiguous().view(-1).view(torch.uint8).cpu().numpy().tobytes()
        gathered = array[coords] if shape else array.reshape(1)
        if gathered.dtype.kind == "O":  # Python objects: their text where it is plain data
            return repr([x if isinstance(x, (str, bytes, int, float, bool)) else type(x).__qualname__
                         for x in gathered.tolist()]).encode()
        return np.ascontiguousarray(gathered).tobytes()
    except Exception:  # a sparse, quantized or meta tensor: its shape and dtype alone
        return b"?"
