"""DataLoader probe: which indices each DataLoader pass served, and what happened during the pass.

The sampler always runs in the main process (workers only call ``__getitem__``), so wrapping the
iterator's ``_sampler_iter`` sees every index batch, with ``num_workers > 0``, persistent workers
and prefetching alike, and changes nothing the loader yields or draws from the RNG. Per batch the
probe appends the sampled batch to a list and counts the consumed batch; converting indices,
resolving them through ``Subset``/``ConcatDataset`` and filling the bitsets happens when the pass
ends (or every ``FLUSH_BATCHES`` batches in very long passes). With the default ``in_order=True``
the k-th consumed batch is the k-th sampled one, so a pass cut short (``break``) counts only the
batches the loop really received.

A pass is labelled from what happened during it: optimizer steps or ``backward()`` → ``train``;
otherwise forwards of a watched model, batches fetched under ``no_grad``/``inference_mode`` or
models left in eval mode → ``eval``; otherwise ``unknown`` (a statistics pass, say). The user can
say so explicitly with ``watchdog.loader_role(loader, "eval")``.
"""

from __future__ import annotations

import functools
import hashlib
import time
import weakref
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch
from torch.utils.data import dataloader as torch_dataloader

from ..overlap.datasets import IndexResolver, dataset_len, flatten_batches, object_ref
from ..overlap.indexset import IndexSet
from .findings import WatchdogStop
from .frames import names_in_frames, preferred_name, user_frames

if TYPE_CHECKING:
    from .run import Run

FLUSH_BATCHES = 4096
_grad_enabled = torch.is_grad_enabled
COMPONENT = "probe:dataloader"
ROLES = ("train", "eval", "ignore")
_ROLE_ALIASES = {"val": "eval", "validation": "eval", "test": "eval", "training": "train"}

# Explicit roles, settable before or during a run: loader -> role.
_explicit_roles: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def set_loader_role(loader: Any, role: str) -> None:
    if not isinstance(loader, torch.utils.data.DataLoader):
        raise TypeError(f"watchdog.loader_role expects a torch DataLoader, got {type(loader).__name__}")
    canonical = _ROLE_ALIASES.get(role, role)
    if canonical not in ROLES:
        raise ValueError(f"watchdog.loader_role: role must be one of {ROLES} (or val/test), not {role!r}")
    _explicit_roles[loader] = canonical


class _Discard(list):
    """Stands in for a record's sample list once recording must stop."""

    def append(self, item: Any) -> None:  # noqa: D401 - list API
        pass


class LoaderInfo:
    def __init__(self, loader: Any, number: int, dataset_id: int):
        self.ref = weakref.ref(loader)
        self.loader_id = f"L{number}"
        self.names: list[str] = []
        self.roles: set[str] = set()
        self.passes = 0
        self.iterable = loader._dataset_kind == torch_dataloader._DatasetKind.Iterable
        self.dataset_type = type(loader.dataset).__name__
        self.dataset_id = dataset_id  # the resolver's key: a new loader each epoch over one dataset is one stream
        self.dataset_ref = object_ref(loader.dataset)
        self.dataset_size = dataset_len(loader.dataset)
        self.where: str | None = None
        self.unchecked: str | None = "iterable-dataset" if self.iterable else None

    @property
    def label(self) -> str:
        name = preferred_name(self.names)
        return f"`{name}`" if name else f"DataLoader {self.loader_id} ({self.dataset_type})"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.loader_id, "names": list(self.names), "roles": sorted(self.roles), "passes": self.passes,
                "dataset": self.dataset_type, "dataset_size": self.dataset_size, "where": self.where}


class PassRecord:
    """One pass over one DataLoader, from ``iter(loader)`` to exhaustion (or abandonment)."""

    __slots__ = ("loader", "index", "dataset", "sampled", "consumed", "flushed", "served", "samples",
                 "steps", "backwards", "forwards", "nograd_forwards", "eval_mode_forwards", "nograd_batches",
                 "closed", "abandoned", "expected", "where", "t0", "epoch0", "explicit_role", "unchecked", "fingerprints",
                 "fingerprint_rows", "eval_models_at_start", "stack", "__weakref__")

    def __init__(self, loader: LoaderInfo, index: int, dataset: Any, run: "Run"):
        self.loader = loader
        self.index = index
        self.dataset = dataset
        self.sampled: list[Any] = [] if loader.unchecked is None else _Discard()
        self.consumed = 0
        self.flushed = 0
        self.served: dict[int, IndexSet] = {}
        self.samples = 0
        self.steps = 0  # optimizer steps while this was the innermost open pass
        self.backwards = 0
        self.forwards = 0
        self.nograd_forwards = 0
        self.eval_mode_forwards = 0
        self.nograd_batches = 0
        self.closed = False
        self.abandoned = False
        self.expected: int | None = None  # len(iterator): a loop may stop there without StopIteration
        self.where: str | None = None
        self.t0 = time.time()
        self.epoch0 = run.loop.epoch
        self.explicit_role: str | None = None
        self.unchecked: str | None = loader.unchecked
        self.fingerprints: list[np.ndarray] | None = [] if run.options.fingerprint and self.unchecked is None else None
        self.fingerprint_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.eval_models_at_start = 0
        self.stack: list[Any] | None = None  # the open passes of the thread that began this one

    @property
    def untouched(self) -> bool:
        return self.consumed == 0 and not self.sampled and self.flushed == 0


def _recording(source: Iterator[Any], record: PassRecord, probe: "DataLoaderProbe") -> Iterator[Any]:
    """Yields exactly what ``source`` yields, noting each index batch in the pass record.

    The user's sampler's own exceptions pass through unchanged; an error in watchdog's note
    switches the probe off (``probe.failed``) and the generator goes on yielding.
    """
    try:
        for batch in source:
            if probe.recording:
                try:
                    probe.note_sampled(record, batch)
                except Exception as exc:
                    probe.failed(exc)
            yield batch
    except GeneratorExit:
        if probe.recording:
            try:
                probe.sampler_closed(record)
            except Exception as exc:
                probe.failed(exc)
        raise


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


class DataLoaderProbe:
    name = "dataloader"

    def install(self, run: "Run") -> None:
        self.run = run
        self.resolver = IndexResolver()
        self.deferred: list[PassRecord] = []
        self._loader_numbers = 0
        self.recording = True  # False once watchdog's own bookkeeping failed: the wrappers pass through
        run.add_boundary(self.process_deferred)
        base = torch_dataloader._BaseDataLoaderIter
        original_init, original_reset, original_next = base.__init__, base._reset, base.__next__
        probe = self

        @functools.wraps(original_init)
        def __init__(it: Any, loader: Any, *args: Any, **kwargs: Any) -> None:
            original_init(it, loader, *args, **kwargs)
            if probe.recording:
                try:
                    probe.begin_pass(it, loader)
                except WatchdogStop:
                    raise  # strict mode: the user asked for it
                except Exception as exc:
                    probe.failed(exc)

        @functools.wraps(original_reset)
        def _reset(it: Any, *args: Any, **kwargs: Any) -> None:
            original_reset(it, *args, **kwargs)
            if probe.recording:
                try:
                    loader = args[0] if args else kwargs.get("loader")
                    if loader is not None:
                        probe.begin_pass(it, loader)
                except WatchdogStop:
                    raise
                except Exception as exc:
                    probe.failed(exc)

        @functools.wraps(original_next)
        def __next__(it: Any) -> Any:
            try:
                data = original_next(it)
            except StopIteration:
                if probe.recording:
                    stop = None
                    try:
                        stop = probe.loader_exhausted(it)
                    except Exception as exc:
                        probe.failed(exc)
                    if stop is not None:
                        raise stop from None
                raise
            if probe.recording:
                try:
                    probe.count_batch(it, data)
                except Exception as exc:
                    probe.failed(exc)
            return data

        run.patches.setattr(base, "__init__", __init__)
        run.patches.setattr(base, "_reset", _reset)
        run.patches.setattr(base, "__next__", __next__)

    # -- per batch (called inside the wrappers' guards) ---------------------------------------------------
    def count_batch(self, it: Any, data: Any) -> None:
        """A batch reached the loop: count it (and fingerprint it, when asked)."""
        record = it.__dict__.get("_wd_pass")
        if record is not None:
            record.consumed += 1
            if record.consumed == record.expected:  # all len(loader) batches received: drained
                self.deferred.append(record)
            if not _grad_enabled():
                record.nograd_batches += 1
            if record.fingerprints is not None:
                self.fingerprint(record, data)
            if record.consumed - record.flushed >= FLUSH_BATCHES:
                self.flush(record)

    def note_sampled(self, record: PassRecord, batch: Any) -> None:
        """The sampler gave an index batch (it is resolved to base indices when the pass ends)."""
        record.sampled.append(batch)

    def sampler_closed(self, record: PassRecord) -> None:
        """The pass's sampler iterator was dropped: a pass cut short is closed at the next boundary."""
        if not record.closed:
            drained = record.expected is not None and record.consumed >= record.expected
            record.abandoned = not drained
            if not drained:  # a drained pass is already waiting in self.deferred
                self.deferred.append(record)

    def loader_exhausted(self, it: Any) -> Any:
        """``StopIteration``: close the pass; returns a pending ``WatchdogStop`` to raise, if any."""
        record = it.__dict__.get("_wd_pass")
        if record is not None and not record.closed:
            return self.end_pass(record)
        return None

    def failed(self, exc: BaseException) -> None:
        """Watchdog's own bookkeeping failed: stop recording for the rest of the run and say so.

        The open passes are dropped unreported (their counts can no longer be trusted), so nothing
        is misattributed; the wrappers become pass-throughs.
        """
        self.recording = False
        run = self.run
        try:
            for record in list(run.loop.open_passes):
                record.closed = True
                record.sampled = _Discard()
                record.fingerprints = None
            run.loop.open_passes.clear()
            self.deferred.clear()
        except Exception:  # never raise from here: this runs inside the wrappers' guards
            pass
        run.internal_error(COMPONENT, exc)

    # -- pass start --------------------------------------------------------------------------------
    def loader_info(self, loader: Any) -> LoaderInfo:
        info = self.run.loop.loaders.get(id(loader))
        if info is None or info.ref() is not loader:
            self._loader_numbers += 1
            info = LoaderInfo(loader, self._loader_numbers, self.resolver.key_of(loader.dataset))
            self.run.loop._loaders[id(loader)] = info
        return info

    def begin_pass(self, it: Any, loader: Any) -> None:
        stop = None
        if COMPONENT in self.run.disabled:
            return
        try:
            stop = self._begin_pass(it, loader)
        except Exception as exc:
            self.run.internal_error(COMPONENT, exc)
        if stop is not None:
            raise stop

    def _begin_pass(self, it: Any, loader: Any) -> Any:
        run = self.run
        record: PassRecord | None = it.__dict__.get("_wd_pass")
        if record is not None and not record.closed and record.untouched and record.loader.ref() is loader:
            self._wrap_sampler(it, record)  # the multi-process iterator's _reset right after __init__
            return None
        if record is not None and not record.closed:
            record.abandoned = True
            self._end_pass(record)  # persistent workers: a new pass started before the last ended
        self.process_deferred()
        stop = run.take_pending_stop()

        info = self.loader_info(loader)
        frames = user_frames(4)
        names = names_in_frames({id(loader): loader}, frames).get(id(loader), [])
        for name in names:
            if name not in info.names:
                info.names.append(name)
        run.loop.discover_models(frames)
        if info.passes == 0:
            self._name_bases(loader, frames)

        record = PassRecord(info, info.passes, loader.dataset, run)
        record.where = frames[0].where if frames else None
        info.where = info.where or record.where
        record.explicit_role = _explicit_roles.get(loader)
        record.eval_models_at_start = sum(
            1 for m in run.loop.models.values() if (mod := m.ref()) is not None and not mod.training
        )
        try:
            record.expected = len(it)
        except Exception:  # samplers without a length, iterable datasets
            record.expected = None
        it.__dict__["_wd_pass"] = record
        if record.unchecked is None:
            self._wrap_sampler(it, record)
        record.stack = run.loop.open_passes
        record.stack.append(record)
        run.emit("loader_pass_start", {"loader": info.label, "loader_id": info.loader_id,
                                       "pass_index": record.index, "where": record.where,
                                       "epochs_completed": run.loop.epoch, "step": run.loop.steps},
                 refs={"record": record})
        return stop

    def _wrap_sampler(self, it: Any, record: PassRecord) -> None:
        source = it._sampler_iter
        if source is not None:
            it._sampler_iter = _recording(source, record, self)

    def _name_bases(self, loader: Any, frames: list) -> None:
        bases = self.resolver.bases_of(loader.dataset)
        live = {base.key: dataset for base in bases if (dataset := base.ref()) is not None}
        found = names_in_frames({id(dataset): dataset for dataset in live.values()}, frames)
        for base in bases:
            if base.key not in live:
                continue
            for name in found.get(id(live[base.key]), []):
                if name not in base.names:
                    base.names.append(name)

    # -- per batch (only when asked) -----------------------------------------------------------------
    def fingerprint(self, record: PassRecord, data: Any) -> None:
        try:
            digests = row_digests(data)
        except Exception:
            digests = None
        if digests is None:
            record.fingerprints = None
        else:
            record.fingerprints.append(digests)

    def flush(self, record: PassRecord) -> None:
        """Move the consumed batches' indices into the pass's bitsets (bulk work)."""
        try:
            self._flush(record)
        except Exception as exc:
            record.unchecked = "internal-error"
            record.sampled = _Discard()
            self.run.internal_error(COMPONENT, exc)

    def _flush(self, record: PassRecord) -> None:
        count = record.consumed - record.flushed
        if count <= 0 or record.unchecked is not None or isinstance(record.sampled, _Discard):
            return
        batches = record.sampled[:count]
        del record.sampled[:count]
        record.flushed += count
        try:
            flat = flatten_batches(batches)
        except TypeError:
            record.unchecked = record.loader.unchecked = "non-integer-indices"
            record.sampled = _Discard()
            return
        record.samples += int(flat.size)
        parts = self.resolver.resolve(record.dataset, flat)
        for key, _, base_idx in parts:
            served = record.served.get(key)
            if served is None:
                served = record.served[key] = IndexSet(self.resolver.bases[key].size or 0)
            served.add(base_idx)
        if record.fingerprints is not None:
            digests = record.fingerprints[:count]
            del record.fingerprints[:count]
            digests_flat = np.concatenate(digests) if digests else np.empty(0, np.uint64)
            if digests_flat.size == flat.size:
                for key, pos, base_idx in parts:
                    record.fingerprint_rows.append((np.full(pos.size, key, dtype=np.int64), base_idx, digests_flat[pos]))

    # -- pass end ------------------------------------------------------------------------------------
    def end_pass(self, record: PassRecord) -> Any:
        """Close the pass; returns a pending ``WatchdogStop`` to raise, if the user asked for one."""
        try:
            self._end_pass(record)
            self.process_deferred()
        except Exception as exc:
            self.run.internal_error(COMPONENT, exc)
        return self.run.take_pending_stop()

    def classify(self, record: PassRecord) -> str:
        if record.explicit_role is not None:
            return record.explicit_role
        if record.steps > 0 or record.backwards > 0:
            return "train"
        if record.forwards > 0 or record.nograd_batches > 0 or (record.consumed > 0 and record.eval_models_at_start):
            return "eval"
        return "unknown"

    def _end_pass(self, record: PassRecord) -> None:
        if record.closed:
            return
        run = self.run
        record.closed = True
        if record.stack is not None and record in record.stack:
            record.stack.remove(record)
        self._flush(record)
        record.sampled = _Discard()
        record.fingerprints = None
        record.dataset = None
        self.resolver.forget_freed()
        info = record.loader
        role = self.classify(record)
        info.roles.add(role)
        info.passes += 1
        bases = {key: self.resolver.bases[key] for key in record.served}
        run.emit(
            "loader_pass_end",
            {
                "loader": info.label, "loader_id": info.loader_id, "pass_index": record.index, "role": role,
                "batches": record.consumed, "samples": record.samples, "unique_samples": {
                    bases[k].type_name: len(v) for k, v in record.served.items()},
                "steps": record.steps, "backwards": record.backwards,
                "forwards": record.forwards, "nograd_forwards": record.nograd_forwards,
                "eval_mode_forwards": record.eval_mode_forwards, "nograd_batches": record.nograd_batches,
                "complete": not record.abandoned, "unchecked": record.unchecked, "where": record.where,
                "epochs_completed": record.epoch0, "step": run.loop.steps, "seconds": round(time.time() - record.t0, 3),
            },
            refs={"record": record, "served": record.served, "bases": bases, "loader_info": info},
        )
        if role == "train":
            run.loop.training_pass_ended(info)

    def process_deferred(self) -> None:
        """Close passes that ended without ``StopIteration``, at the next boundary.

        Two kinds: passes abandoned mid-way (a ``break``), noticed when their iterator was dropped;
        and passes drained (all ``len(loader)`` batches received) by a loop that stops counting
        instead of exhausting the iterator, as Lightning's fetcher does. A drained pass still open at
        the next boundary closes there, complete; an ordinary loop's ``StopIteration`` closes it first.
        """
        while self.deferred:
            record = self.deferred.pop(0)
            try:
                self._end_pass(record)
            except Exception as exc:
                self.run.internal_error(COMPONENT, exc)

    def finish(self) -> None:
        """Run end: close what is still open (a pass cut short, or the exception's pass)."""
        self.process_deferred()
        for record in reversed(self.run.loop.all_open_passes()):
            record.abandoned = True
            self._end_pass(record)
        self.run.take_pending_stop()  # too late to stop anything: the findings stand
