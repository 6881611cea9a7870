"""Memory probe: samples memory at every epoch end, and at most once a second in between.

Nothing runs per training step. At each ``epoch_end`` event (the training thread, a boundary) it
reads process RSS and the CUDA caching allocator's counters (no sync; only if the program already
initialised CUDA), takes a census of live tensors (:mod:`watchdog.memory.census`) when the budget
allows, compares it with the previous one, and emits a ``memory_sample`` event (``data["at"] ==
"epoch_end"``; refs: the census, its diff with the previous one, the ``CudaMemory`` objects).

The budget (:mod:`watchdog.memory.budget`): the epoch ends (census, sample, the memory check's work
on it) take at most 1% of the run's wall time, from the first epoch on; the census runs when that
allows, every epoch once epochs last ~100× a census. ``WATCHDOG_MEMORY_CENSUS``: ``0`` turns the
census off, ``every-epoch`` takes it at every epoch end whatever it costs (a short run, a leak
being chased), anything else (the default) keeps it within the budget.

A daemon thread wakes every ``WATCHDOG_MEMORY_SAMPLE_INTERVAL`` seconds (environment, clamped to
0.01-60; by default 1 s for the first 10 minutes, then 10 s) and, when training made progress,
emits ``memory_sample`` with ``data["at"] == "sampler"``: the step count, RSS, CUDA
allocated/reserved and NVML's device-wide used memory. NVML is initialised lazily in its own thread
(see :class:`~watchdog.memory.sources.NvmlReader`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from ..core.frames import release_locals_snapshots, stack_frames
from .budget import CensusBudget
from .census import CensusStopped, take_census
from .sources import CudaAllocatorReader, NvmlReader, RssReader

if TYPE_CHECKING:
    from ..core.run import Run

DEFAULT_INTERVAL = 1.0
INTERVAL_ENV = "WATCHDOG_MEMORY_SAMPLE_INTERVAL"
SLOW_DOWN_AFTER_S = 600.0
SLOW_INTERVAL = 10.0
CENSUS_ENV = "WATCHDOG_MEMORY_CENSUS"  # "0": off (RSS/CUDA only); "every-epoch": no budget; else budgeted
CENSUS_MODES = ("budget", "every-epoch", "off")


def census_mode(value: object) -> str:
    """``WATCHDOG_MEMORY_CENSUS`` (or the ``memory_census`` extra option) as a mode."""
    if value is False or str(value).strip().lower() in ("0", "off", "false", "no"):
        return "off"
    if str(value).strip().lower() in ("every-epoch", "every_epoch", "always"):
        return "every-epoch"
    return "budget"


class MemoryProbe:
    name = "memory"

    def __init__(self) -> None:
        self.run: Any = None
        self.rss: RssReader | None = None
        self.cuda: CudaAllocatorReader | None = None
        self.nvml = NvmlReader()
        self.previous_census: Any = None
        self._stop = threading.Event()
        # Held by the sampler thread while it samples and emits: once _halt_sampler() returns, no
        # sample is emitted (the thread is joined by the run, once its reports are written).
        self._sampling = threading.Lock()
        self._thread: Any = None
        self._last_sampled_step = -1
        self.budget = CensusBudget()
        self.census_mode = "budget"
        self._peaks: dict[int, int] = {}  # device -> allocator's all-time peak at the last epoch end
        self._sampled_max: dict[int, int] = {}  # device -> highest allocation sampled this epoch
        self.interval = DEFAULT_INTERVAL
        self.interval_fixed = False

    # -- install / undo ----------------------------------------------------------------------------
    def install(self, run: "Run") -> None:
        self.run = run
        self.budget = CensusBudget(clock=self.budget.clock, blocks=self.budget.blocks)  # the run starts now
        extra = getattr(run.options, "extra", None) or {}
        interval = extra.get("memory_sample_interval", os.environ.get(INTERVAL_ENV))
        self.interval_fixed = interval is not None
        try:
            self.interval = min(60.0, max(0.01, float(interval))) if interval is not None else DEFAULT_INTERVAL
        except (TypeError, ValueError):
            self.interval, self.interval_fixed = DEFAULT_INTERVAL, False
        self.census_mode = census_mode(extra.get("memory_census", os.environ.get(CENSUS_ENV, "1")))
        self.rss = RssReader()
        run.patches.add_undo(self.rss.close, "memory: RSS reader")
        self.cuda = CudaAllocatorReader()
        run.bus.subscribe(self, kinds=("epoch_end",))
        run.patches.add_undo(lambda: run.bus.unsubscribe(self), "memory: epoch_end subscription")
        # Started without waiting for it to be scheduled; the run joins it after writing its reports.
        self._thread = run.background(self._sampler, "watchdog-memory-sampler", join_timeout=2.0)
        run.patches.add_undo(self._halt_sampler, "memory: sampler thread")

    def _halt_sampler(self) -> None:
        """No sample is emitted once this returns: the thread ends at its next wake-up, and the run
        joins it once its reports are written (the thread's wake-up is not waited for here)."""
        # At most 2 s: a SIGTERM handled while the training thread emits (it holds the run's lock)
        # would otherwise wait for a sampler that waits for that lock.
        acquired = self._sampling.acquire(timeout=2.0)
        try:
            self._stop.set()
        finally:
            if acquired:
                self._sampling.release()

    def finish(self) -> None:
        self._halt_sampler()
        self.previous_census = None

    # -- epoch end (training thread) ---------------------------------------------------------------
    def on_epoch_end(self, event: Any) -> None:
        run = self.run
        if run is None or run.is_disabled("probe:memory"):
            return
        try:
            self._epoch_end(event)
        except Exception as exc:
            run.internal_error("probe:memory", exc)

    def _epoch_end(self, event: Any) -> None:
        budget = self.budget
        started = budget.clock()
        try:
            self._sample_epoch_end(event)
        finally:
            budget.spend(budget.clock() - started)  # the census, the sample and the checks' work on it

    def _census_due(self) -> bool:
        if self.census_mode == "off":
            return False
        return self.census_mode == "every-epoch" or self.budget.census_due()

    def _sample_epoch_end(self, event: Any) -> None:
        run = self.run
        census = diff = census_stopped = None
        if self._census_due():
            budget = self.budget
            census_started = budget.clock()
            # Locals snapshots that reading f_locals left on the training frames (watchdog's own
            # naming at pass starts, debuggers) keep old values alive: release them first, so the
            # census counts what the program holds, and that memory goes back.
            release_locals_snapshots(stack_frames(sys._getframe()))
            allowance = budget.census_allowance() if self.census_mode == "budget" else None
            try:
                census = take_census(previous=self.previous_census, allowance_s=allowance)
            except CensusStopped as stopped:  # its cost was guessed too low: planned again for what it costs
                budget.census_stopped(budget.clock() - census_started, stopped.estimated_s)
                census_stopped = {"seconds": round(stopped.elapsed_s, 6), "estimated_s": round(stopped.estimated_s, 6)}
            else:
                budget.census_taken(budget.clock() - census_started)
                if self.previous_census is not None:
                    diff = census.compare_to(self.previous_census)
                self.previous_census = census
        cuda = self.cuda.read() if self.cuda is not None else []
        if cuda and self.nvml.state == "idle":
            self.nvml.start()
        cuda_dicts = []
        for m in cuda:
            d = m.to_dict()
            d["epoch_peak"] = self._epoch_peak(m)
            cuda_dicts.append(d)
        data: dict[str, Any] = {
            "at": "epoch_end",
            "epoch": event.data.get("epochs_completed", run.loop.epoch),
            "steps": run.loop.steps,
            "rss": self.rss.read() if self.rss is not None else None,
            "cuda": cuda_dicts,
        }
        if census is not None:
            data["census"] = census.to_dict()
        if census_stopped is not None:
            data["census_stopped"] = census_stopped
        if diff is not None:
            data["census_diff"] = {
                "count": diff.count_diff,
                "bytes": diff.bytes_diff,
                "new_tensors": diff.new_count,
                "top": [
                    {"tensors": r.key.describe(), "count": r.count_diff, "bytes": r.bytes_diff}
                    for r in diff.rows[:5]
                ],
            }
        refs = {"census": census, "diff": diff, "cuda": {m.device: m for m in cuda}}
        run.emit("memory_sample", data, refs)

    def _epoch_peak(self, mem: Any) -> int:
        """This epoch's peak allocation without resetting the user's peak counters: the allocator's
        all-time peak when it rose during the epoch (exact), else the highest sampled value."""
        previous = self._peaks.get(mem.device)
        self._peaks[mem.device] = mem.peak_allocated
        sampled = self._sampled_max.pop(mem.device, 0)
        if previous is None or mem.peak_allocated > previous:
            return mem.peak_allocated
        return max(sampled, mem.allocated)

    # -- sampler (background thread) ---------------------------------------------------------------
    def _current_interval(self, elapsed: float) -> float:
        """1 s for the first 10 minutes, then 10 s (keeps events.jsonl small on multi-day runs),
        unless set explicitly."""
        if self.interval_fixed or elapsed < SLOW_DOWN_AFTER_S:
            return self.interval
        return max(self.interval, SLOW_INTERVAL)

    def _sampler(self) -> None:
        """The sampler thread's body: an error anywhere in it stops sampling and becomes a finding."""
        try:
            self._sample_until_stopped()
        except Exception as exc:
            if self.run is not None:
                self.run.internal_error("probe:memory", exc)

    def _sample_until_stopped(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self._current_interval(time.monotonic() - started)):
            with self._sampling:
                if self._stop.is_set() or not self._sample_once():
                    return

    def _sample_once(self) -> bool:
        """A sample, when training made progress since the last one (under ``_sampling``); False once
        sampling is over (the probe switched off, or an error here, which becomes a finding)."""
        run = self.run
        if run is None or run.is_disabled("probe:memory"):
            return False
        try:
            steps = run.loop.steps
            if steps == self._last_sampled_step:
                return True
            self._last_sampled_step = steps
            cuda = self.cuda.read() if self.cuda is not None else []
            for m in cuda:
                if m.allocated > self._sampled_max.get(m.device, 0):
                    self._sampled_max[m.device] = m.allocated
            data: dict[str, Any] = {
                "at": "sampler",
                "epoch": run.loop.epoch,
                "steps": steps,
                "rss": self.rss.read() if self.rss is not None else None,
                "cuda": [{"device": m.device, "allocated": m.allocated, "reserved": m.reserved} for m in cuda],
            }
            if cuda:
                if self.nvml.state == "idle":
                    self.nvml.start()
                nvml = self.nvml.read(self.cuda.uuids())
                if nvml:
                    data["nvml"] = [{"device": m.device, "used": m.used, "total": m.total} for m in nvml]
            run.emit("memory_sample", data)
        except Exception as exc:
            run.internal_error("probe:memory", exc)
            return False
        return True
