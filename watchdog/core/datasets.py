"""Datasets as the run sees them: a key that no other dataset of the run ever gets, a size, a reference.

The DataLoader probe keys each loader's dataset here (``LoaderInfo.dataset_id``: a new loader each
epoch over the same dataset is one stream), and hands the same ``DatasetKeys`` to the features'
pass captures, so every dataset of a run has one key whoever asks.
"""

from __future__ import annotations

import itertools
import weakref
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
