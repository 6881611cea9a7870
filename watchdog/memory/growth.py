"""The growth rule: when a memory series measured once per epoch is leaking, and how fast.

Measured at a comparable point of every epoch (its end), a leak adds about the same amount each
epoch; normal memory swings up and down, and warm-up (optimizer state, caches, the allocator
settling) happens in the first epoch or two and then stops.

The rule (:func:`steady_growth`):

* growth during the first ``warmup`` epochs is ignored: the baseline is the end of epoch
  ``warmup`` (default 1: the end of epoch 1 already holds the optimizer state created by the first
  step, and the caches filled by the first pass);
* after it, the last ``window`` epoch-to-epoch increments (default 3) must **all** be above the
  noise floor ``min_step`` and each within ``±tolerance`` (default 50%) of their median;
* the rate is that median, per epoch.

With the defaults a leak that starts in epoch 1 is caught at the end of epoch 4 (samples at the
ends of epochs 1-4 give three increments). A memory level that swings (+20 MB, -15 MB, +25 MB) or
that grows for a while and then plateaus (a bounded cache filling up) fails the rule. Thresholds per
series are in :data:`THRESHOLDS`; they were tuned on the tests' leaking and control loops.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Sequence

MB = 1024 * 1024


def _median(values: Sequence[float]) -> float:
    """``statistics.median`` (the middle value; the mean of the two middle ones for an even count),
    without importing ``statistics`` (and ``fractions``, ``decimal``) into every watched process."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True)
class Thresholds:
    min_step: float  # smallest per-epoch increment that counts (the series' noise floor)
    window: int = 3  # consecutive consistent increments needed
    tolerance: float = 0.5  # each increment within ±tolerance of the median increment
    warmup: int = 1  # epochs whose growth is ignored (the baseline is the end of epoch `warmup`)


# Per series. Tensor counts: a per-step leak adds at least one tensor per step, so ≥ 8 tensors an
# epoch (a handful per epoch, e.g. keeping each epoch's mean loss, is bookkeeping, not a leak).
# RSS is noisy (glibc keeps freed memory; swings of hundreds of MB were measured between epochs
# of the same run), so it needs a longer run and a larger floor, and only corroborates on a CPU.
THRESHOLDS = {
    "tensor_count": Thresholds(min_step=8),
    "tensor_bytes": Thresholds(min_step=1 * MB),
    "cuda_allocated": Thresholds(min_step=1 * MB),
    "cuda_reserved_gap": Thresholds(min_step=64 * MB),
    "rss": Thresholds(min_step=16 * MB, window=4),
}


@dataclass(frozen=True)
class Growth:
    rate: float  # per epoch (median of the consistent increments)
    increments: tuple[float, ...]
    since_index: int  # index of the sample the steady growth starts from
    last: float

    def project(self, epochs_ahead: float) -> float:
        return self.last + self.rate * epochs_ahead

    def epochs_until(self, limit: float) -> float | None:
        """Epochs from the last sample until the series reaches ``limit`` (None if it never does)."""
        if self.rate <= 0 or limit <= self.last:
            return None if self.rate <= 0 else 0.0
        return (limit - self.last) / self.rate


def steady_growth(values: Sequence[float | None], thresholds: Thresholds) -> Growth | None:
    """The rule above on one series of epoch-end samples (oldest first, one per epoch).

    ``None`` marks an epoch without a sample (the census skipped it to stay within its time
    budget); increments across a gap are divided by the number of epochs it spans.
    """
    # Growth during the first `warmup` epochs is ignored: the baseline is the end of epoch `warmup`.
    start = max(0, thresholds.warmup - 1)
    points = [(i, v) for i, v in enumerate(values) if i >= start and v is not None]
    return growth_of_points(points[-(thresholds.window + 1):], thresholds)


def growth_of_points(points: Sequence[tuple[int, float]], thresholds: Thresholds) -> Growth | None:
    """The rule on the last ``window + 1`` samples after the warm-up, as ``(position, value)``
    pairs (position: the epoch's 0-based index, increasing; gaps between positions are epochs
    without a sample, and each increment is divided by the epochs it spans)."""
    if len(points) < thresholds.window + 1:
        return None
    tail = list(points)[-(thresholds.window + 1):]
    increments = [(b - a) / (j - i) for (i, a), (j, b) in zip(tail, tail[1:])]
    if any(d < thresholds.min_step for d in increments):
        return None
    median = _median(increments)
    if median <= 0:
        return None
    low, high = median * (1 - thresholds.tolerance), median * (1 + thresholds.tolerance)
    if any(d < low or d > high for d in increments):
        return None
    return Growth(rate=median, increments=tuple(increments), since_index=tail[0][0], last=tail[-1][1])


def window_growth(samples: Sequence[tuple[int, float]], *, windows: int = 4, min_step: float,
                  tolerance: float = 0.5, skip: float = 0.2) -> tuple[float, int] | None:
    """Within-epoch early warning: ``samples`` are (step, value) pairs from one epoch.

    The first ``skip`` fraction of the steps is left out (warm-up); the rest is cut into
    ``windows`` + 1 equal step windows; each window's *minimum* is its
    floor (activations come and go within a step; a leak raises the floor). If every floor is
    above the previous one by at least ``min_step`` and the increments are consistent (±tolerance
    of their median), returns (growth per step, first step); else None.
    """
    if samples:
        # The start of an epoch warms up (first batches, workers, a switch from evaluation):
        # judge the rest.
        cut = samples[0][0] + skip * (samples[-1][0] - samples[0][0])
        samples = [s for s in samples if s[0] >= cut]
    if len(samples) < 2 * (windows + 1):
        return None
    first, last = samples[0][0], samples[-1][0]
    span = last - first
    if span < windows + 1:
        return None
    width = span / (windows + 1)
    floors: list[float] = [math.inf] * (windows + 1)
    for step, value in samples:
        i = min(windows, int((step - first) / width))
        floors[i] = min(floors[i], value)
    if any(math.isinf(f) for f in floors):
        return None
    increments = [b - a for a, b in zip(floors, floors[1:])]
    if any(d < min_step for d in increments):
        return None
    median = _median(increments)
    if any(abs(d - median) > tolerance * median for d in increments):
        return None
    return median / width, first


# --------------------------------------------------------------------------------------------
# Epoch by epoch: the series each rule runs on


@dataclass
class EpochSample:
    """Memory at the end of one epoch (``epoch`` = epochs completed, 1-based)."""

    epoch: int
    steps: int
    tensor_count: int | None = None
    tensor_bytes: int | None = None
    graph_count: int | None = None
    rss: int | None = None
    cuda: dict | None = None  # device index -> CudaMemory


@dataclass
class Verdict:
    """One series that satisfies the growth rule."""

    series: str  # "tensors", "cuda", "rss", "fragmentation"
    device: str  # "cpu", "cuda:0", ... ("process" for RSS)
    growth: Growth
    extra: Growth | None = None  # tensors: bytes growth alongside the count growth
    detail: dict | None = None


RECENT_INCREMENTS = 3  # increments behind `SeriesTail.recent_rate` (reporting only)
KEPT_SAMPLES = 200  # epoch-end samples kept for a finding's evidence (the last ones)


class SeriesTail:
    """The growth rule on one series, kept up to date sample by sample.

    Only what the rule reads is kept: the last ``window + 1`` samples at or after the warm-up (and
    the last ``RECENT_INCREMENTS + 1`` of any epoch, for :meth:`recent_rate`), as ``(position,
    value)`` with position the epoch's 0-based index. Adding a sample costs the same at epoch
    10,000 as at epoch 10. Samples need not be consecutive: an epoch without one (no census, a
    device not seen) is a gap the increments are divided by; a sample for an epoch not after the
    last one is ignored.
    """

    __slots__ = ("thresholds", "judged", "recent", "growth")

    def __init__(self, thresholds: Thresholds):
        self.thresholds = thresholds
        self.judged: deque[tuple[int, float]] = deque(maxlen=thresholds.window + 1)
        self.recent: deque[tuple[int, float]] = deque(maxlen=RECENT_INCREMENTS + 1)
        self.growth: Growth | None = None  # the rule's verdict as of the last sample

    def add(self, position: int, value: float | None) -> None:
        if value is None or (self.recent and position <= self.recent[-1][0]):
            return
        self.recent.append((position, value))
        if position >= max(0, self.thresholds.warmup - 1):
            self.judged.append((position, value))
            self.growth = growth_of_points(self.judged, self.thresholds)

    def recent_rate(self) -> float:
        """The median of the last increments per epoch (no threshold): for reporting only."""
        points = self.recent
        increments = sorted((b - a) / (j - i) for (i, a), (j, b) in zip(points, list(points)[1:]))
        return float(increments[len(increments) // 2]) if increments else 0.0


class EpochSeries:
    """Keeps the epoch-end samples and says which series grow steadily.

    Incremental: each series is a :class:`SeriesTail`, so :meth:`add` and :meth:`verdicts` cost
    the same whatever the run's length; ``samples`` keeps the last ``KEPT_SAMPLES`` epochs (a
    finding's evidence), ``count`` how many were added.
    """

    def __init__(self, thresholds: dict[str, Thresholds] | None = None):
        self.thresholds = dict(THRESHOLDS)
        if thresholds:
            self.thresholds.update(thresholds)
        self.samples: deque[EpochSample] = deque(maxlen=KEPT_SAMPLES)
        self.count = 0
        self.tails: dict[str, SeriesTail] = {}
        self.devices: list[int] = []  # CUDA devices seen, sorted

    def tail(self, name: str, rule: str | None = None) -> SeriesTail:
        """The series ``name`` (``tensor_count``, ``tensor_bytes``, ``rss``, ``cuda:0:allocated``,
        ``cuda:0:reserved_gap``, ``cuda:0:inactive_split``), judged with ``THRESHOLDS[rule]``."""
        tail = self.tails.get(name)
        if tail is None:
            tail = self.tails[name] = SeriesTail(self.thresholds[rule or name])
        return tail

    def add(self, sample: EpochSample) -> list[Verdict]:
        self.samples.append(sample)
        self.count += 1
        position = sample.epoch - 1
        self.tail("tensor_count").add(position, sample.tensor_count)
        self.tail("tensor_bytes").add(position, sample.tensor_bytes)
        self.tail("rss").add(position, sample.rss)
        for device, mem in (sample.cuda or {}).items():
            if device not in self.devices:
                self.devices = sorted(self.devices + [device])
            self.tail(f"cuda:{device}:allocated", "cuda_allocated").add(position, mem.allocated)
            self.tail(f"cuda:{device}:reserved_gap", "cuda_reserved_gap").add(position, mem.reserved_unallocated)
            self.tail(f"cuda:{device}:inactive_split", "cuda_reserved_gap").add(position, mem.inactive_split)
        return self.verdicts()

    def growth(self, name: str) -> Growth | None:
        tail = self.tails.get(name)
        return tail.growth if tail is not None else None

    def rate_known(self, name: str) -> bool:
        """Whether ``recent_rate(name)`` is measured: the series has two epochs' values at least."""
        tail = self.tails.get(name)
        return tail is not None and len(tail.recent) >= 2

    def recent_rate(self, name: str) -> float:
        tail = self.tails.get(name)
        return tail.recent_rate() if tail is not None else 0.0

    def verdicts(self) -> list[Verdict]:
        out: list[Verdict] = []
        counts, nbytes = self.growth("tensor_count"), self.growth("tensor_bytes")
        if counts is not None or nbytes is not None:
            out.append(Verdict("tensors", "python", counts or nbytes, extra=nbytes if counts else None))
        for device in self.devices:
            allocated = self.growth(f"cuda:{device}:allocated")
            if allocated is not None:
                out.append(Verdict("cuda", f"cuda:{device}", allocated))
            gap = self.growth(f"cuda:{device}:reserved_gap")
            split = self.growth(f"cuda:{device}:inactive_split")
            if gap is not None or split is not None:
                out.append(Verdict("fragmentation", f"cuda:{device}", gap or split,
                                   detail={"series": "reserved-allocated" if gap else "inactive_split"}))
        rss = self.growth("rss")
        if rss is not None:
            out.append(Verdict("rss", "process", rss))
        return out
