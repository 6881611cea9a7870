"""Index capture: which base-dataset indices each DataLoader pass served (the overlap feature's pass capture).

The DataLoader probe (``core/loaders.py``) tracks the passes and drives this capture through its
small protocol (``PassCapture`` there). Per index batch the sampler gives, the pass's
``PassIndices`` appends the batch to a list; converting indices, resolving them through
``Subset``/``ConcatDataset`` and filling the bitsets happens at flushes: every ``FLUSH_INDICES``
sampled indices (``FLUSH_INDICES_CONVERTING`` while a Subset's index list is still being
converted), whatever the batch size (the probe flushes every ``flush_every`` consumed batches: that
many indices // the longest batch seen), and when the pass ends. One flush's work is bounded by
it: the pending batches hold at most that many indices, and a Subset's index list is converted a
bounded chunk per flush (``datasets.SubsetTable``). With the default ``in_order=True`` the k-th
consumed batch is the k-th sampled one, so a pass cut short (``break``) counts only the batches the
loop really received. With ``fingerprint=True`` each consumed batch's rows are also hashed, for the
duplicate-content check.

What a pass served goes into its ``loader_pass_end`` event: ``samples`` and ``unique_samples`` in
its data; ``served`` {base key: IndexSet}, ``bases`` {base key: BaseInfo} and ``fingerprint_rows``
in its refs.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import BatchSampler

from ..core.datasets import DatasetKeys
from ..core.frames import names_in_frames
from .datasets import IndexResolver, flatten_batches
from .indexset import IndexSet, IndexSetBuilder

if TYPE_CHECKING:
    from ..core.loaders import PassRecord
    from ..core.run import Run

# Sampled indices per flush. A flush costs ~40-120 ns per index (flatten, resolve, bitset): 10-30 ms.
# Larger flushes are cheaper per index while a dataset's tables fit in the CPU's caches (each
# flush brings them back). While a Subset's index list is being converted, a flush also converts
# 2**18 entries (datasets.CONVERT_PER_FLUSH, 5-15 ms) and reads the indices past the converted part
# from the list itself (0.5-2 us each, a cache miss or two): flushes hold 64x fewer indices then
# (at most 4096 such reads, 2-8 ms; ~FLUSH_INDICES_CONVERTING / 2 per 2**18 entries converted, a few
# ns per index of a pass over the list). A flush's work is bounded in indices, whatever the
# dataset size: at most max(FLUSH_INDICES, one batch) indices, or max(FLUSH_INDICES_CONVERTING,
# one batch) while it reads from a Subset's list, and CONVERT_PER_FLUSH entries converted. (A
# sampler that jumps past a table's converted part after a flush that needed no more can make one
# steady flush read up to FLUSH_INDICES from the list; the next one is small again.)
FLUSH_INDICES = 1 << 18
# Indices per block of a flush's work (``PassIndices.flush``): its arrays (128 KB of int64) stay cached.
FLUSH_BLOCK = 1 << 14
FLUSH_INDICES_CONVERTING = 1 << 12


class _Discard(list):
    """Stands in for a pass's sample list once recording must stop."""

    def append(self, item: Any) -> None:  # noqa: D401 - list API
        pass


class IndexCapture:
    """The run's index capture: one resolver (and its Subset caches) shared by every pass."""

    name = "indices"

    def __init__(self, run: "Run", dataset_keys: DatasetKeys):
        self.run = run
        self.resolver = IndexResolver(dataset_keys)

    def begin_pass(self, record: "PassRecord", dataset: Any, frames: list) -> "PassIndices":
        if record.loader.passes == 0:
            self._name_bases(dataset, frames)
        return PassIndices(self, record, dataset)

    def _name_bases(self, dataset: Any, frames: list) -> None:
        bases = self.resolver.bases_of(dataset)
        live = {base.key: base_dataset for base in bases if (base_dataset := base.ref()) is not None}
        found = names_in_frames({id(base_dataset): base_dataset for base_dataset in live.values()}, frames)
        for base in bases:
            if base.key not in live:
                continue
            for name in found.get(id(live[base.key]), []):
                if name not in base.names:
                    base.names.append(name)


class PassIndices:
    """What one pass sampled and served, from its first index batch to its end."""

    __slots__ = ("capture", "dataset", "sampled", "filling", "samples", "fingerprints", "fingerprint_rows",
                 "longest", "flush_every")

    def __init__(self, capture: IndexCapture, record: "PassRecord", dataset: Any):
        self.capture = capture
        self.dataset = dataset
        self.sampled: list[Any] = [] if record.unchecked is None else _Discard()
        # The longest index batch flushed so far, and the consumed batches the probe lets pass
        # between flushes: FLUSH_INDICES_CONVERTING indices' worth until a flush read no index
        # from a Subset's list (its table covered them all), then FLUSH_INDICES'. Torch's own
        # BatchSampler says its batch size; any other batch sampler is flushed after its first
        # batch, which tells it.
        self.longest = _batch_size(record.loader.ref())
        self.flush_every = max(1, FLUSH_INDICES_CONVERTING // self.longest) if self.longest else 1
        self.filling: dict[int, IndexSetBuilder] = {}  # base key -> what this pass served of it, so far
        self.samples = 0
        self.fingerprints: list[np.ndarray] | None = (
            [] if capture.run.options.fingerprint and record.unchecked is None else None)
        self.fingerprint_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    # -- per batch (hot path) -----------------------------------------------------------------------
    def note_sampled(self, batch: Any) -> None:
        """The sampler gave an index batch (it is resolved to base indices when the pass ends)."""
        self.sampled.append(batch)

    @property
    def sampled_any(self) -> bool:
        return bool(self.sampled)

    @property
    def reads_batches(self) -> bool:
        return self.fingerprints is not None

    def read_batch(self, data: Any) -> bool:
        """Fingerprint a consumed batch; False once this pass cannot be fingerprinted."""
        if self.fingerprints is None:  # stopped: the pass's sampler keys are not indices
            return False
        try:
            digests = row_digests(data)
        except Exception:
            digests = None
        if digests is None:
            self.fingerprints = None
            return False
        self.fingerprints.append(digests)
        return True

    # -- bulk work ------------------------------------------------------------------------------------
    def flush(self, record: "PassRecord", count: int) -> None:
        """Move the first ``count`` unflushed sampled batches' indices into the pass's bitsets.

        By blocks of about ``FLUSH_BLOCK`` indices (whole batches): a block's arrays stay in the
        CPU's cache from one step to the next and no temporary is large (a flush's 2**18 indices at
        once would be arrays of 2 MB, handed back to the system and faulted in again at every
        flush). The Subset conversion budget is the flush's, whatever its blocks.
        """
        if count <= 0 or record.unchecked is not None or isinstance(self.sampled, _Discard):
            return
        batches = self.sampled[:count]
        del self.sampled[:count]
        digests: list[np.ndarray] | None = None
        if self.fingerprints is not None:
            digests = self.fingerprints[:count]
            del self.fingerprints[:count]
        resolver = self.capture.resolver
        resolver.begin_flush()
        start = 0
        while start < len(batches):
            stop = start + (max(1, FLUSH_BLOCK // self.longest) if self.longest else 1)
            try:
                flat, longest = flatten_batches(batches[start:stop])
            except TypeError:
                record.unchecked = record.loader.unchecked = "non-integer-indices"
                self.stop()
                return
            self.longest = max(self.longest, longest)
            self._add(flat, digests[start:stop] if digests is not None else None)
            start = stop
        indices = FLUSH_INDICES_CONVERTING if resolver.read_from_lists else FLUSH_INDICES
        self.flush_every = max(1, indices // self.longest) if self.longest else indices

    def _add(self, flat: np.ndarray, digests: list[np.ndarray] | None) -> None:
        """Resolve one block of sampled indices and add them to the pass's sets (and fingerprint rows)."""
        self.samples += int(flat.size)
        resolver = self.capture.resolver
        parts = resolver.resolve(self.dataset, flat)
        for key, _, base_idx in parts:
            served = self.filling.get(key)
            if served is None:
                served = self.filling[key] = IndexSetBuilder(resolver.bases[key].size)
            served.add(base_idx)
        if digests is not None and self.fingerprints is not None:
            digests_flat = np.concatenate(digests) if digests else np.empty(0, np.uint64)
            if digests_flat.size == flat.size:
                for key, pos, base_idx in parts:
                    self.fingerprint_rows.append((np.full(pos.size, key, dtype=np.int64), base_idx, digests_flat[pos]))

    def stop(self) -> None:
        """Record nothing more for this pass (what it holds can no longer be trusted, or it ended)."""
        self.sampled = _Discard()
        self.fingerprints = None
        self.dataset = None

    def end(self, record: "PassRecord", count: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pass ended: flush the last ``count`` batches; what goes into ``loader_pass_end``."""
        self.flush(record, count)
        self.stop()
        resolver = self.capture.resolver
        resolver.forget_freed()
        served: dict[int, IndexSet] = {key: builder.build() for key, builder in self.filling.items()}
        self.filling = {}
        bases = {key: resolver.bases[key] for key in served}
        data = {"samples": self.samples,
                "unique_samples": {bases[k].type_name: len(v) for k, v in served.items()}}
        refs = {"served": served, "bases": bases, "fingerprint_rows": self.fingerprint_rows}
        return data, refs


def _batch_size(loader: Any) -> int:
    """The loader's batch size where torch's own ``BatchSampler`` makes its batches, else 0 (unknown)."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    if type(batch_sampler) is BatchSampler and isinstance(batch_sampler.batch_size, int):
        return max(batch_sampler.batch_size, 0)
    return 0


def row_digests(batch: Any) -> np.ndarray | None:
    """64-bit content digests of each sample in a collated batch (its first CPU tensor)."""
    tensor = _first_tensor(batch)
    if tensor is None or tensor.device.type != "cpu" or tensor.dim() == 0:
        return None
    rows = tensor.detach().reshape(tensor.shape[0], -1).contiguous()
    raw = rows.view(torch.uint8).numpy() if rows.dtype != torch.bool else rows.numpy().view(np.uint8)
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little") for r in raw),
        dtype=np.uint64, count=raw.shape[0],
    )


def _first_tensor(batch: Any) -> torch.Tensor | None:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            if isinstance(item, torch.Tensor):
                return item
    return None
