"""DataLoader probe: each DataLoader pass, from ``iter(loader)`` to its end, and what happened during it.

The sampler always runs in the main process (workers only call ``__getitem__``), so wrapping the
iterator's ``_sampler_iter`` sees every index batch, with ``num_workers > 0``, persistent workers
and prefetching alike, and changes nothing the loader yields or draws from the RNG. Per batch the
probe counts the consumed batch; a dropped sampler iterator tells a pass cut short (``break``).

What each pass served is the business of the features' pass captures (``PASS_CAPTURES``, found
through ``registry.pass_captures()``; the overlap feature's index capture, say): the probe makes
them at install and drives them through the protocol below (``PassCapture``, ``CapturedPass``),
always inside its own guards.

A pass is labelled from what happened during it: optimizer steps or ``backward()`` → ``train``;
otherwise forwards of a watched model, batches fetched under ``no_grad``/``inference_mode`` or
models left in eval mode → ``eval``; otherwise ``unknown`` (a statistics pass, say). The user can
say so explicitly with ``watchdog.loader_role(loader, "eval")``.
"""

from __future__ import annotations

import functools
import itertools
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

import torch
from torch.utils.data import dataloader as torch_dataloader

from .datasets import DatasetKeys, dataset_len, object_ref
from .findings import WatchdogStop
from .frames import names_in_frames, preferred_name, user_frames
from .registry import pass_captures

if TYPE_CHECKING:
    from .run import Run

FLUSH_BATCHES = 4096  # consumed batches between flushes, for captures that do not say (``flush_every``)
_grad_enabled = torch.is_grad_enabled
COMPONENT = "probe:dataloader"
ROLES = ("train", "eval", "ignore")
_ROLE_ALIASES = {"val": "eval", "validation": "eval", "test": "eval", "training": "train"}

# Explicit roles, settable before or during a run: loader -> role.
_explicit_roles: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def set_loader_role(loader: Any, role: str) -> None:
    """Say what a DataLoader is for, when watchdog cannot tell (``watchdog.loader_role(loader, "eval")``).

    ``role``: ``"train"``, ``"eval"`` (or ``"val"``, ``"validation"``, ``"test"``), or ``"ignore"``
    (a loader watchdog should not judge: a statistics pass, a calibration set). Without it, a pass
    with optimizer steps or ``backward()`` is training; one with forwards and no step, under
    ``no_grad``, or with the model in eval mode is evaluation.
    Raises ``TypeError`` for something that is not a ``torch.utils.data.DataLoader`` and
    ``ValueError`` for an unknown role.
    """
    if not isinstance(loader, torch.utils.data.DataLoader):
        raise TypeError(f"watchdog.loader_role expects a torch DataLoader, got {type(loader).__name__}")
    canonical = _ROLE_ALIASES.get(role, role)
    if canonical not in ROLES:
        raise ValueError(f"watchdog.loader_role: role must be one of {ROLES} (or val/test), not {role!r}")
    _explicit_roles[loader] = canonical


def _index_sampler(loader: Any) -> Any:
    """What draws the loader's indices: the sampler inside torch's own ``BatchSampler``, else the
    user's batch sampler, else the sampler (``batch_size=None``)."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    if type(batch_sampler) is torch.utils.data.BatchSampler:
        return batch_sampler.sampler
    return batch_sampler if batch_sampler is not None else getattr(loader, "sampler", None)


def epoch_sampler_state(loader: Any, frames: list) -> dict[str, Any] | None:
    """The state of the loader's epoch-driven sampler (one with ``set_epoch``: ``DistributedSampler``)
    as the pass starts, or None for any other sampler.

    ``type``, ``shuffle``, ``epoch`` (what ``set_epoch`` last set: the pass's order is drawn from
    ``seed + epoch``), ``seed``, ``num_replicas``, ``rank`` (None where the sampler has no such
    attribute) and ``names``: the variables that hold the sampler in the user's frames.
    """
    batch_sampler = getattr(loader, "batch_sampler", None)
    for sampler in (batch_sampler, getattr(batch_sampler, "sampler", None), getattr(loader, "sampler", None)):
        if sampler is not None and callable(getattr(sampler, "set_epoch", None)):
            break
    else:
        return None

    def plain(name: str) -> Any:
        value = getattr(sampler, name, None)
        return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)

    return {"type": type(sampler).__name__, "shuffle": plain("shuffle"), "epoch": plain("epoch"), "seed": plain("seed"),
            "num_replicas": plain("num_replicas"), "rank": plain("rank"),
            "names": names_in_frames({id(sampler): sampler}, frames).get(id(sampler), [])}


class PassCapture(Protocol):
    """What a feature's pass capture class (declared in its package as ``PASS_CAPTURES``) provides.

    The DataLoader probe makes one per run at install, ``capture_class(run, dataset_keys)``:
    ``dataset_keys`` is the run's ``DatasetKeys``, the key every dataset has in this run (the
    probe keys each loader's dataset with it too). Every call below is made inside the probe's
    guards, and a capture that raises fails as the probe's own bookkeeping would: an
    internal-error finding for ``probe:dataloader``, and the probe stops recording; only a
    failed periodic ``flush`` costs no more than its pass (its captures stop, and the pass ends
    with ``unchecked: "internal-error"``).
    """

    def begin_pass(self, record: "PassRecord", dataset: Any, frames: list) -> "CapturedPass":
        """A pass over ``dataset`` began (``frames``: the user's frames around ``iter(loader)``).

        ``record.unchecked`` says already whether the pass's samples can be seen; the probe wraps
        the sampler iterator itself and hands each index batch to the returned ``CapturedPass``.
        """
        ...


class CapturedPass(Protocol):
    """One capture's state for one pass (``record.captured`` holds one per capture, in order)."""

    flush_every: int
    """Optional: how many consumed batches may pass before the capture's next ``flush`` (read when
    the pass begins and after each flush; the probe flushes at the smallest of the captures', else
    every ``FLUSH_BATCHES``). The index capture sizes it so that a flush holds a fixed number of
    indices, whatever the batch size."""

    def note_sampled(self, batch: Any) -> None:
        """Per index batch the sampler gives (hot path: keep it to an append). A capture that wants
        nothing per batch (it only looks at the pass's start) sets ``note_sampled = None`` instead."""

    @property
    def sampled_any(self) -> bool:
        """Whether it holds an index batch: a pass that sampled nothing and consumed nothing is untouched."""
        ...

    @property
    def reads_batches(self) -> bool:
        """Whether ``read_batch`` wants each consumed batch (asked once, when the pass begins)."""
        ...

    def read_batch(self, data: Any) -> bool:
        """Per consumed batch, only while it reads batches (fingerprints); False: no more for this pass."""
        ...

    def flush(self, record: "PassRecord", count: int) -> None:
        """``count`` more batches were consumed since the last flush: bulk work (every ``flush_every``).

        A capture that cannot identify the pass's samples sets ``record.unchecked`` (and
        ``record.loader.unchecked``, for the loader's later passes) to the reason.
        """

    def stop(self) -> None:
        """Record nothing more for this pass (the probe's bookkeeping failed)."""

    def end(self, record: "PassRecord", count: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pass ended (flush the last ``count`` batches first): what goes into its
        ``loader_pass_end`` event, as (data fields, refs)."""
        ...


class LoaderStream:
    """The DataLoaders a user sees as one loader: one object, or one rebuilt each epoch (see ``LoaderStreams``).

    ``id``: ``S<n>``, in the order streams first appear; ``names``: the variables that held its
    loaders (the same for each of them); ``passes``: the passes of all its loaders, any role;
    ``objects``: its DataLoader objects so far.
    """

    __slots__ = ("id", "names", "where", "first", "last", "objects", "passes", "began_at", "joined")

    def __init__(self, number: int, info: "LoaderInfo", began_at: tuple[int, int], joined: int):
        self.id = f"S{number}"
        self.names = tuple(info.names)
        self.where = info.where
        self.first = self.last = info
        self.objects = 1
        self.passes = 0
        self.began_at = began_at  # (optimizer steps, epochs) when its newest loader began its first pass
        self.joined = joined  # when its newest loader joined it (LoaderStreams' counter)

    @property
    def label(self) -> str:
        """Its newest loader's label; for loaders without a name, its first one's (``DataLoader L1 (Subset)``
        whatever the number of its objects)."""
        return self.last.label if self.last.names else self.first.label

    def loader_dict(self, info: "LoaderInfo") -> dict[str, Any]:
        """``info.to_dict()`` (one of its loaders) for the stream: its passes, and how many objects it took."""
        data = {**info.to_dict(), "passes": self.passes}
        if self.objects > 1:
            data["objects"] = self.objects
        return data


class LoaderStreams:
    """Which stream each DataLoader belongs to: the rule for loaders rebuilt inside the epoch loop.

    ``for epoch in ...: loader = DataLoader(train_ds, ...)`` makes a new object each epoch; to the
    user it is one loader. A loader joins, when its first pass begins, the stream of earlier loaders
    held under the same names (``LoaderInfo.names``, as its first pass found them):

    1. that iterated the very same dataset object (``dataset_id``; the loop's epoch rule has it so too), else
    2. that were iterated at the same place (``where``) whose dataset is freed since (rebuilt with
       its loader: ``train_ds = Subset(ds, idx)`` in the epoch loop) and whose newest loader began
       before an optimizer step or an epoch end that has happened since; of several, the one joined
       longest ago. A loader that begins with no step and no epoch end since is a sibling, not a
       successor: a validation and a test loader built at one place in one evaluation are two streams.

    Else it starts a stream of its own. Two different loaders built each epoch (train and val) are
    two streams: their names, their datasets or their places differ. The streams are as many as
    the loaders the user wrote, whatever the number of epochs.
    """

    def __init__(self) -> None:
        self._streams: list[LoaderStream] = []
        self._numbers = itertools.count(1)
        self._joins = itertools.count()

    def join(self, info: "LoaderInfo", steps: int, epochs: int) -> LoaderStream:
        """The stream of ``info`` (a loader at its first pass, its names and place known)."""
        names = tuple(info.names)
        named_alike = [s for s in self._streams if s.names == names]
        stream = next((s for s in named_alike if s.last.dataset_id == info.dataset_id), None)
        if stream is None:
            successors = [s for s in named_alike if s.where == info.where and s.last.dataset_ref() is None
                          and (s.began_at[0] < steps or s.began_at[1] < epochs)]
            stream = min(successors, key=lambda s: s.joined, default=None)
        if stream is None:
            stream = LoaderStream(next(self._numbers), info, (steps, epochs), next(self._joins))
            self._streams.append(stream)
            return stream
        stream.last = info
        stream.objects += 1
        stream.began_at = (steps, epochs)
        stream.joined = next(self._joins)
        return stream


class LoaderInfo:
    def __init__(self, loader: Any, number: int, dataset_id: int):
        self.ref = weakref.ref(loader)
        self.loader_id = f"L{number}"
        self.names: list[str] = []
        self.roles: set[str] = set()
        self.passes = 0
        self.iterable = loader._dataset_kind == torch_dataloader._DatasetKind.Iterable
        self.dataset_type = type(loader.dataset).__name__
        self.dataset_id = dataset_id  # the run's DatasetKeys key: a new loader each epoch over one dataset is one stream
        self.dataset_ref = object_ref(loader.dataset)
        self.dataset_size = dataset_len(loader.dataset)
        self.sampler_type = type(_index_sampler(loader)).__name__
        self.where: str | None = None
        self.unchecked: str | None = "iterable-dataset" if self.iterable else None
        self.stream: LoaderStream | None = None  # set when its first pass begins (LoaderStreams.join)

    @property
    def label(self) -> str:
        name = preferred_name(self.names)
        return f"`{name}`" if name else f"DataLoader {self.loader_id} ({self.dataset_type})"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.loader_id, "names": list(self.names), "roles": sorted(self.roles), "passes": self.passes,
                "dataset": self.dataset_type, "dataset_size": self.dataset_size, "sampler": self.sampler_type,
                "where": self.where}


class PassRecord:
    """One pass over one DataLoader, from ``iter(loader)`` to exhaustion (or abandonment)."""

    __slots__ = ("loader", "index", "consumed", "flushed", "steps", "backwards", "forwards", "nograd_forwards",
                 "eval_mode_forwards", "nograd_batches", "closed", "abandoned", "expected", "where", "t0", "epoch0",
                 "explicit_role", "unchecked", "captured", "batch_readers", "eval_models_at_start", "stack",
                 "sampler", "flush_every", "__weakref__")

    def __init__(self, loader: LoaderInfo, index: int, run: "Run"):
        self.loader = loader
        self.index = index
        self.consumed = 0
        self.flushed = 0  # consumed batches handed to the captures' flush
        self.flush_every = FLUSH_BATCHES  # consumed batches between flushes (the captures' flush_every)
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
        self.unchecked: str | None = loader.unchecked  # why its samples cannot be identified, if they cannot
        self.captured: tuple[CapturedPass, ...] = ()  # the captures' state for this pass
        self.batch_readers: tuple[Callable[[Any], bool], ...] | None = None  # per consumed batch (fingerprints)
        self.eval_models_at_start = 0
        self.stack: list[Any] | None = None  # the open passes of the thread that began this one
        self.sampler: dict[str, Any] | None = None  # an epoch-driven sampler's state at the start (epoch_sampler_state)

    def role(self, final: bool = True) -> str:
        """``train``, ``eval`` or ``unknown``: the one rule, at the pass's end or (``final=False``) so far.

        Training: an optimizer step or a ``backward()``. Evaluation: forwards with neither (or batches
        under ``no_grad``, or models in eval mode at the start). While the pass runs, forwards under
        grad with no backward *yet* say nothing: the backward may come with the next call.
        """
        if self.explicit_role is not None:
            return self.explicit_role
        if self.steps > 0 or self.backwards > 0:
            return "train"
        if not final and self.forwards > self.nograd_forwards:
            return "unknown"
        if self.forwards > 0 or self.nograd_batches > 0 or (self.consumed > 0 and self.eval_models_at_start):
            return "eval"
        return "unknown"

    @property
    def untouched(self) -> bool:
        return self.consumed == 0 and self.flushed == 0 and not any(c.sampled_any for c in self.captured)


def _recording(source: Iterator[Any], record: PassRecord, probe: "DataLoaderProbe",
               note: Callable[[Any], None]) -> Iterator[Any]:
    """Yields exactly what ``source`` yields, handing each index batch to the pass's captures (``note``).

    The user's sampler's own exceptions pass through unchanged; an error in watchdog's note
    switches the probe off (``probe.failed``) and the generator goes on yielding.
    """
    try:
        for batch in source:
            if probe.recording:
                try:
                    note(batch)
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


def _note_of(captured: tuple[CapturedPass, ...]) -> Callable[[Any], None]:
    """What the sampler wrapper calls per index batch: the one capture's ``note_sampled``, as a rule
    (a capture whose ``note_sampled`` is None wants nothing per batch)."""
    notes = tuple(c.note_sampled for c in captured if c.note_sampled is not None)
    if len(notes) == 1:
        return notes[0]
    if not notes:
        return _note_nothing

    def note_each(batch: Any) -> None:
        for note in notes:
            note(batch)

    return note_each


def _note_nothing(batch: Any) -> None:
    pass


def _flush_every(captured: tuple[CapturedPass, ...]) -> int:
    """Consumed batches between flushes: the smallest the captures ask for, else ``FLUSH_BATCHES``."""
    asked = [n for c in captured if (n := getattr(c, "flush_every", None)) is not None]
    return max(1, min(asked)) if asked else FLUSH_BATCHES


class DataLoaderProbe:
    name = "dataloader"

    def install(self, run: "Run") -> None:
        self.run = run
        self.dataset_keys = DatasetKeys()
        self.captures = [capture_class(run, self.dataset_keys) for capture_class in pass_captures()]
        self.deferred: list[PassRecord] = []
        self._loader_numbers = 0
        self.streams = LoaderStreams()
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
        """A batch reached the loop: count it (and hand it to the captures that read batches, if any)."""
        record = it.__dict__.get("_wd_pass")
        if record is not None:
            record.consumed += 1
            if record.consumed == record.expected:  # all len(loader) batches received: drained
                self.deferred.append(record)
            if not _grad_enabled():
                record.nograd_batches += 1
            if record.batch_readers is not None:
                self.read_batch(record, data)
            if record.consumed - record.flushed >= record.flush_every:
                self.flush(record)

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
                record.batch_readers = None
                for captured in record.captured:
                    captured.stop()
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
            info = LoaderInfo(loader, self._loader_numbers, self.dataset_keys.key_of(loader.dataset))
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

        record = PassRecord(info, info.passes, run)
        record.captured = tuple(capture.begin_pass(record, loader.dataset, frames) for capture in self.captures)
        record.flush_every = _flush_every(record.captured)
        readers = tuple(captured.read_batch for captured in record.captured if captured.reads_batches)
        record.batch_readers = readers or None
        record.where = frames[0].where if frames else None
        info.where = info.where or record.where
        if info.stream is None:
            info.stream = self.streams.join(info, run.loop.steps, run.loop.epoch)
        record.explicit_role = _explicit_roles.get(loader)
        record.sampler = epoch_sampler_state(loader, frames)
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
            it._sampler_iter = _recording(source, record, self, _note_of(record.captured))

    # -- per batch (only when a capture reads batches) ---------------------------------------------------
    def read_batch(self, record: PassRecord, data: Any) -> None:
        """Hand a consumed batch to the captures that read batches; drop those done with this pass."""
        readers = record.batch_readers
        for read in readers:
            if not read(data):
                readers = tuple(r for r in readers if r is not read)
        record.batch_readers = readers or None

    def flush(self, record: PassRecord) -> None:
        """Hand the batches consumed since the last flush to the captures (bulk work)."""
        count = record.consumed - record.flushed
        record.flushed = record.consumed
        try:
            for captured in record.captured:
                captured.flush(record, count)
            record.flush_every = _flush_every(record.captured)
        except Exception as exc:
            record.unchecked = "internal-error"
            record.batch_readers = None
            for captured in record.captured:
                captured.stop()
            self.run.internal_error(COMPONENT, exc)

    # -- pass end ------------------------------------------------------------------------------------
    def end_pass(self, record: PassRecord) -> Any:
        """Close the pass; returns a pending ``WatchdogStop`` to raise, if the user asked for one."""
        try:
            self._end_pass(record)
            self.process_deferred()
        except Exception as exc:
            self.run.internal_error(COMPONENT, exc)
        return self.run.take_pending_stop()

    def _end_pass(self, record: PassRecord) -> None:
        if record.closed:
            return
        run = self.run
        record.closed = True
        if record.stack is not None and record in record.stack:
            record.stack.remove(record)
        record.batch_readers = None
        count = record.consumed - record.flushed
        record.flushed = record.consumed
        captured_data: dict[str, Any] = {}
        captured_refs: dict[str, Any] = {}
        for captured in record.captured:
            data, refs = captured.end(record, count)
            captured_data.update(data)
            captured_refs.update(refs)
        self.dataset_keys.forget_freed()
        info = record.loader
        role = record.role()
        info.roles.add(role)
        info.passes += 1
        if info.stream is not None:
            info.stream.passes += 1
        run.emit(
            "loader_pass_end",
            {
                "loader": info.label, "loader_id": info.loader_id, "pass_index": record.index, "role": role,
                "batches": record.consumed, **captured_data,
                "steps": record.steps, "backwards": record.backwards,
                "forwards": record.forwards, "nograd_forwards": record.nograd_forwards,
                "eval_mode_forwards": record.eval_mode_forwards, "nograd_batches": record.nograd_batches,
                "complete": not record.abandoned, "unchecked": record.unchecked, "where": record.where,
                "epochs_completed": record.epoch0, "step": run.loop.steps, "seconds": round(time.time() - record.t0, 3),
                **({"sampler": record.sampler} if record.sampler is not None else {}),
            },
            refs={"record": record, **captured_refs, "loader_info": info},
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
