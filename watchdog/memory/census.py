"""A census of live tensors, compared epoch to epoch: which tensors are new since the last one.

The shape of the API follows ``tracemalloc``::

    older = take_census()
    ...                                          # one more epoch
    newer = take_census(previous=older)
    diff = newer.compare_to(older)               # growth by (device, dtype, shape, has_graph)
    holders = find_holders(diff)                 # (watchdog.memory.holders) who holds the new ones

A census scans ``gc.get_objects()`` once for tensors (the Python-visible ones: those the program
bound to a name at some point, including activations torch keeps alive for an autograd graph). It
records counts and bytes (each storage counted once) per key, and weak references (or, past
200k tensors, fingerprints), never the tensors themselves, so it keeps nothing alive. It reads no
tensor data, so it never syncs a device and never touches an RNG. Cost, measured on a 2-core CI
machine: 10-25 ms per 100k tracked objects (``import torch`` alone makes about 170k) plus 4-5 µs
per live tensor; it runs at epoch end, never per step.

The culprit walk that names who holds the new tensors is :mod:`watchdog.memory.holders`; the sizing
of the autograd graphs they keep alive, :mod:`watchdog.memory.graphs`.
"""

from __future__ import annotations

import functools
import gc
import itertools
import time
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.gcpause import gc_paused


@dataclass(frozen=True)
class TensorKey:
    device: str
    dtype: str
    shape: tuple
    has_graph: bool

    def describe(self) -> str:
        shape = "×".join(str(s) for s in self.shape) or "scalar"
        graph = ", with grad_fn" if self.has_graph else ""
        return f"{self.dtype.replace('torch.', '')}[{shape}] on {self.device}{graph}"


@dataclass
class KeyStat:
    count: int = 0
    bytes: int = 0


WEAKREF_LIMIT = 200_000
_DEVICE_CODES: dict[torch.device, int] = {}


def _device_code(device: torch.device) -> int:
    code = _DEVICE_CODES.get(device)
    if code is None:
        code = _DEVICE_CODES[device] = min(len(_DEVICE_CODES), 63)
    return code


def tensor_storage(t: torch.Tensor) -> tuple[int | None, int]:
    """(storage identity, storage bytes) without reading data; views share one identity.

    The identity is one int (the storage's address and a device code), so a census can keep the
    identities of a million storages in a numpy array."""
    try:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr == 0:  # meta tensors, empty storages
            return None, 0
        device = t.device
        code = _DEVICE_CODES.get(device)
        if code is None:
            code = _device_code(device)
        return (ptr << 6) | code, storage.nbytes()
    except Exception:  # sparse, nested, functional wrappers: no plain storage
        try:
            if t.device.type == "meta":
                return None, 0
            return None, t.numel() * t.element_size()
        except Exception:
            return None, 0


class IdSet:
    """A compact, sorted set of ints (ids, storage identities) with ``in``: 8 bytes an element."""

    __slots__ = ("_values",)

    def __init__(self, values: Any = ()):
        array = np.sort(np.asarray(values if len(values) else [], dtype=np.int64))
        if len(array) > 1:
            array = array[np.concatenate(([True], array[1:] != array[:-1]))]
        self._values = array

    def __contains__(self, value: Any) -> bool:
        if value is None:
            return False
        values = self._values
        i = int(np.searchsorted(values, value))
        return i < len(values) and int(values[i]) == value

    def __len__(self) -> int:
        return len(self._values)

    def isin(self, values: Any) -> np.ndarray:
        array = np.asarray(values, dtype=np.int64)
        return np.isin(array, self._values, assume_unique=False)


@dataclass
class Census:
    """What tensors were alive at one moment: counts and bytes per key.

    It keeps no tensor. Which tensors are new since the census it was taken against
    (``take_census(previous=...)``) is exact up to ``WEAKREF_LIMIT`` live tensors (a weak
    reference each, ~150 bytes); beyond that, a fingerprint (hash of id, storage and key: 8 bytes
    a tensor) stands in, which can take a new tensor at a recycled address and storage for an old
    one. The new tensors are kept as weak references, for the culprit walk.
    """

    taken_at: float
    objects_scanned: int
    duration_s: float
    count: int
    bytes: int
    graph_count: int  # tensors with a grad_fn (each may keep an autograd graph alive)
    graph_bytes: int  # their own storages (the graphs' saved tensors are sized by graph_size)
    by_key: dict[TensorKey, KeyStat]
    storages: IdSet  # identities of the storages seen
    fingerprints: IdSet = field(repr=False, default_factory=IdSet)  # hash(id, storage, key) per tensor
    previous_taken_at: float | None = None
    _refs: dict[int, Any] | None = field(repr=False, default=None)  # id -> weakref (up to WEAKREF_LIMIT)
    _new: dict[int, tuple[Any, TensorKey]] = field(repr=False, default_factory=dict)  # id -> (weakref, key)
    _kept_storages: IdSet = field(repr=False, default_factory=IdSet)  # storages of tensors not new

    def by_device(self) -> dict[str, KeyStat]:
        out: dict[str, KeyStat] = {}
        for key, stat in self.by_key.items():
            agg = out.setdefault(key.device, KeyStat())
            agg.count += stat.count
            agg.bytes += stat.bytes
        return out

    def compare_to(self, older: "Census") -> "CensusDiff":
        """Growth since ``older``, per key, and the tensors that are new (alive now, not then).

        New tensors are known (and walkable) only when this census was taken with
        ``take_census(previous=older)``; otherwise the diff has the per-key growth only."""
        keys = set(self.by_key) | set(older.by_key)
        rows = []
        for key in keys:
            new = self.by_key.get(key, KeyStat())
            old = older.by_key.get(key, KeyStat())
            if new.count != old.count or new.bytes != old.bytes:
                rows.append(KeyDiff(key, new.count - old.count, new.bytes - old.bytes, new.count, new.bytes))
        rows.sort(key=lambda r: (-r.count_diff, -r.bytes_diff))
        against_older = self.previous_taken_at == older.taken_at
        new_ids = list(self._new) if against_older else []
        return CensusDiff(self, older, rows, new_ids, self._kept_storages if against_older else IdSet())

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "bytes": self.bytes,
            "graph_count": self.graph_count,
            "graph_bytes": self.graph_bytes,
            "objects_scanned": self.objects_scanned,
            "duration_ms": round(self.duration_s * 1000, 2),
        }


@dataclass
class KeyDiff:
    key: TensorKey
    count_diff: int
    bytes_diff: int
    count: int
    bytes: int


@dataclass
class CensusDiff:
    newer: Census
    older: Census
    rows: list[KeyDiff]
    _new_ids: list[int]
    kept_storages: Any = field(default_factory=IdSet, repr=False)  # storages of tensors alive in both

    @property
    def count_diff(self) -> int:
        return self.newer.count - self.older.count

    @property
    def bytes_diff(self) -> int:
        return self.newer.bytes - self.older.bytes

    @property
    def new_count(self) -> int:
        return len(self._new_ids)

    def new_tensors(self, limit: int | None = None) -> list[torch.Tensor]:
        """The new tensors still alive (strong references: drop the list when done)."""
        out = []
        refs = self.newer._new
        for tid in self._new_ids:
            ref = refs[tid][0]
            obj = ref() if ref is not None else None
            if obj is not None:
                out.append(obj)
                if limit is not None and len(out) >= limit:
                    break
        return out


def without_torch_function(fn: Any) -> Any:
    """Run ``fn`` with ``__torch_function__`` off (tensor subclasses and torch-function modes).

    The census reads attributes and storages of every live tensor, the user's tensor subclasses
    included; it must never run their ``__torch_function__`` (it may count calls, log, or fail), so
    it sees each tensor as a plain ``torch.Tensor``."""

    @functools.wraps(fn)
    def plain(*args: Any, **kwargs: Any) -> Any:
        with torch._C.DisableTorchFunction():
            return fn(*args, **kwargs)

    return plain


def _tracked_objects() -> list:
    with warnings.catch_warnings():
        # Touching some torch module attributes during isinstance checks warns (FutureWarning).
        warnings.simplefilter("ignore")
        return gc.get_objects()


class CensusStopped(Exception):
    """A census given ``allowance_s`` stopped once it had spent it: ``elapsed_s`` spent,
    ``estimated_s`` what the whole census would have cost (the listing's time, plus the scan's CPU
    time extrapolated from the share of the objects it had scanned; never less than ``elapsed_s``).
    Nothing of it is kept."""

    def __init__(self, elapsed_s: float, estimated_s: float):
        super().__init__(f"census stopped after {elapsed_s:.3f} s (the whole would take ~{estimated_s:.3f} s)")
        self.elapsed_s = elapsed_s
        self.estimated_s = estimated_s


SCAN_CHUNK = 4096  # objects scanned between two looks at the clock (when an allowance is given): ≤ ~20 ms of tensors
# A whole census over its scan alone, for the estimate of a stopped one: the work after the scan
# (fingerprints, weak references, keys) is per tensor, 0.06x the scan in a heap of plain objects,
# 0.6x with 100k small tensors (measured); this errs high, so the next attempt is planned for no
# less than it costs.
POST_SCAN_FACTOR = 1.5


@without_torch_function
def take_census(previous: Census | None = None, allowance_s: float | None = None) -> Census:
    """Scans the interpreter's objects for live tensors. Epoch-end only (tens of ms).

    With ``previous``, the tensors alive now but not then are remembered (weakly) for
    ``compare_to(previous)`` and the culprit walk. The cyclic garbage collector is paused during
    the scan (the scan allocates a few objects per tensor, which would otherwise set off full
    collections over every tracked object); it is resumed as it was.

    With ``allowance_s``, the scan looks at the clock every ``SCAN_CHUNK`` objects and raises
    :class:`CensusStopped` once it has spent the allowance, so a census whose cost was guessed too
    low costs what it was allowed, not more. ``previous`` is left as it was."""
    with gc_paused():
        return _take_census(previous, allowance_s)


def _take_census(previous: Census | None, allowance_s: float | None = None) -> Census:
    start = time.perf_counter()
    by_key: dict[Any, KeyStat] = {}
    storages: set = set()
    tensors: list = []
    idents: list[int] = []
    count = total = graph_count = graph_bytes = 0
    objects = _tracked_objects()
    listed = time.perf_counter()
    listed_cpu = time.thread_time()
    scanned = len(objects)
    tensor_type = torch.Tensor
    is_tensor_type: dict[type, bool] = {}
    deadline = start + allowance_s if allowance_s is not None else None
    obj = None
    chunk = SCAN_CHUNK if deadline is not None else max(1, scanned)
    remaining = iter(objects)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for done in range(0, scanned, chunk):
            if deadline is not None and done and time.perf_counter() > deadline:
                objects = remaining = obj = None  # the traceback keeps this frame: let go of what it holds
                tensors.clear()
                now, scan_cpu = time.perf_counter(), time.thread_time() - listed_cpu
                # The listing is paid once; the scan so far, for the share of the objects it covered.
                # That share may be one chunk of fifty: its wall time would carry a descheduling of the
                # thread (a loaded machine) fifty-fold into the estimate, its CPU time does not.
                raise CensusStopped(now - start, max(now - start, (listed - start) + scan_cpu * scanned / done * POST_SCAN_FACTOR))
            for obj in itertools.islice(remaining, chunk):
                # type(), not isinstance(): a proxy's __class__ property is never called.
                kind = type(obj)
                flag = is_tensor_type.get(kind)
                if flag is None:
                    try:
                        flag = is_tensor_type[kind] = issubclass(kind, tensor_type)
                    except Exception:
                        flag = is_tensor_type[kind] = False
                if not flag:
                    continue
                try:
                    has_graph = obj.grad_fn is not None
                    key = (obj.device, obj.dtype, tuple(obj.shape), has_graph)  # a TensorKey at the end
                except Exception:
                    continue
                ident, nbytes = tensor_storage(obj)
                if ident is not None:
                    if ident in storages:
                        nbytes = 0
                    else:
                        storages.add(ident)
                stat = by_key.get(key)
                if stat is None:
                    stat = by_key[key] = KeyStat()
                stat.count += 1
                stat.bytes += nbytes
                count += 1
                total += nbytes
                if has_graph:
                    graph_count += 1
                    graph_bytes += nbytes
                tensors.append((obj, key))
                idents.append(ident if ident is not None else -1)
    del objects
    obj = None
    new: dict[int, tuple[Any, TensorKey]] = {}
    kept: list[int] = []
    full_refs: dict[int, Any] | None = {} if len(tensors) <= WEAKREF_LIMIT else None
    fingerprints = np.fromiter(
        (hash((id(t), ident, key)) & 0x7FFFFFFFFFFFFFFF for (t, key), ident in zip(tensors, idents)),
        dtype=np.int64, count=len(tensors),
    )
    exact = previous is not None and previous._refs is not None
    old_mask = None
    if previous is not None and not exact:
        old_mask = previous.fingerprints.isin(fingerprints)
    for i, ((t, key), ident) in enumerate(zip(tensors, idents)):
        if previous is None:
            is_old = True
        elif old_mask is None:
            old = previous._refs.get(id(t))
            is_old = old is not None and old() is t
        else:
            is_old = bool(old_mask[i])
        ref = None
        if full_refs is not None or not is_old:
            try:
                ref = weakref.ref(t)
            except TypeError:
                ref = None
        if full_refs is not None and ref is not None:
            full_refs[id(t)] = ref
        if previous is None:
            continue
        if is_old:
            if ident >= 0:
                kept.append(ident)
        elif ref is not None:
            new[id(t)] = (ref, key)
    tensors.clear()
    t = None
    keys = {raw: TensorKey(str(raw[0]), str(raw[1]), raw[2], raw[3]) for raw in by_key}
    by_key = {keys[raw]: stat for raw, stat in by_key.items()}
    new = {tid: (ref, keys[raw]) for tid, (ref, raw) in new.items()}
    census = Census(
        taken_at=time.monotonic(),
        objects_scanned=scanned,
        duration_s=0.0,
        count=count,
        bytes=total,
        graph_count=graph_count,
        graph_bytes=graph_bytes,
        by_key=by_key,
        storages=IdSet(np.fromiter(storages, dtype=np.int64, count=len(storages))),
        fingerprints=IdSet(fingerprints),
        previous_taken_at=previous.taken_at if previous is not None else None,
        _refs=full_refs,
        _new=new,
        _kept_storages=IdSet(kept),
    )
    census.duration_s = time.perf_counter() - start
    return census
