"""The epoch-end budget: the live-tensor census runs only while the epoch ends stay under 1% of the
run's wall time, from the first epoch on and whatever the epochs' length.

A token bucket on the run's clock. From the moment the run starts it fills with ``FRACTION`` (1%)
of the wall time that passes; every epoch end pays what it measurably cost (the census when there
is one, the memory sample, what the memory check does with it: the growth rule, the culprit walk).
A census is due at an epoch end when the bucket holds its predicted cost. The bucket holds at most
one census's worth, so a quiet stretch (a long data load, a long evaluation) never buys a burst of
censuses on the short epochs after it; an epoch end that cost more than predicted leaves a debt the
next censuses wait for. Over a run, the epoch ends' total stays under 1% of the wall time plus at
most one census.

The predicted cost is the last census's measured cost, scaled by how much the interpreter's memory
blocks (``sys.getallocatedblocks()``, ~0.1 ms, read only when a census is near) grew since; before
the first census, those blocks times the cost per block measured by earlier censuses in this
process (``DEFAULT_S_PER_BLOCK`` for the very first: a guess, since a block costs the census
~0.2 µs in a heap of plain objects and several µs in one of small tensors).

A guess may be low, so a census never spends more than it was allowed (:meth:`census_allowance`):
the bucket's content while its cost is a guess, twice that once a census of this run measured it
(noise). A census that reaches its allowance stops (``census.CensusStopped``) and tells what the
whole would have cost; that estimate is the next prediction, so the next attempt waits until the
bucket holds it, and completes. A stopped census costs what the budget held: the 1% holds from the
first epoch, whatever the heap holds.

The cadence this gives (census cost ``c``, epochs of length ``T``): a census about every
``100 c / T`` epochs, every epoch once ``T >= 100 c``. A leak is reported at the 4th census after
its start (the growth rule needs 3 increments; rates are per epoch, divided by the epochs between
censuses). The latencies this gives for 40 ms, 1 s and 60 s epochs, simulated with the epoch ends'
other costs included and measured on real leaking loops (benchmarks/bench_scaling.py; the cadence
is tested in tests/test_memory_rule.py), are tabled once, in docs/internals.md ("Boundaries").
"""

from __future__ import annotations

import sys
import time
from typing import Callable

FRACTION = 0.01  # the share of the run's wall time the epoch ends may take
DEFAULT_S_PER_BLOCK = 40e-9  # census seconds per allocated block before any census was measured
EPSILON_S = 1e-9  # sums of seconds are floats: a bucket this close to the cost holds it
_measured_s_per_block: list[float] = []  # the last census's seconds per block in this process


class CensusBudget:
    """When the next census may run. ``clock`` (seconds) and ``blocks`` (a size of the
    interpreter's heap) are injectable, so the cadence can be tested without timing anything."""

    def __init__(self, fraction: float = FRACTION, clock: Callable[[], float] = time.perf_counter,
                 blocks: Callable[[], int] = sys.getallocatedblocks):
        self.fraction = fraction
        self.clock = clock
        self.blocks = blocks
        self.started = self._filled_at = clock()
        self.tokens = 0.0  # seconds of epoch-end work the run may still spend (negative: a debt)
        self.spent_s = 0.0  # what the epoch ends cost in all
        self.censuses = 0
        self._census_s: float | None = None  # the last census's own cost
        self._census_blocks = 0  # the heap's size then
        self._predicted: float | None = None  # the next census's cost, as last predicted
        self.stopped = 0  # censuses stopped at their allowance

    def _fill(self, now: float) -> None:
        earned = self.fraction * max(0.0, now - self._filled_at)
        self._filled_at = now
        tokens = self.tokens + earned
        if self._predicted is not None:  # at most one census's worth (never less than it held)
            tokens = min(tokens, max(self.tokens, self._predicted))
        self.tokens = tokens

    def census_due(self) -> bool:
        """At an epoch end: whether the bucket holds the next census's predicted cost."""
        if self._predicted is None:
            self._predicted = self.predict()
        now = self.clock()
        earned = self.fraction * max(0.0, now - self._filled_at)
        if self.tokens + earned + EPSILON_S >= self._predicted:
            # Near a census: the heap's size is read only now, and the bucket may fill up to this
            # prediction. Capped at the previous one, a heap that grows every epoch (a leak: each
            # prediction a little above the last) would keep the bucket just short of it for ever.
            self._predicted = self.predict()
        self._fill(now)
        return self.tokens + EPSILON_S >= self._predicted

    def predict(self) -> float:
        blocks = self.blocks()
        if self._census_s is None:
            per_block = _measured_s_per_block[-1] if _measured_s_per_block else DEFAULT_S_PER_BLOCK
            return blocks * per_block
        return self._census_s * max(1.0, blocks / max(1, self._census_blocks))

    def census_allowance(self) -> float:
        """At an epoch end where :meth:`census_due` said yes: the seconds the census may spend before
        it stops (the bucket; twice the bucket once a census of this run measured the cost)."""
        allowed = max(self.tokens, self._predicted or 0.0)
        return allowed if self._census_s is None else 2.0 * allowed

    def census_stopped(self, seconds: float, estimated_s: float) -> None:
        """The census stopped at its allowance after ``seconds``; the whole would cost ``estimated_s``:
        the next census is planned for that (its epoch end is charged by :meth:`spend`)."""
        self.stopped += 1
        blocks = self.blocks()
        self._census_s, self._census_blocks = estimated_s, blocks
        self._predicted = estimated_s
        if blocks > 0:
            _measured_s_per_block[:] = [estimated_s / blocks]

    def census_taken(self, seconds: float) -> None:
        """The census just taken cost ``seconds`` (its epoch end is charged by :meth:`spend`)."""
        blocks = self.blocks()
        self.censuses += 1
        self._census_s, self._census_blocks = seconds, blocks
        self._predicted = seconds
        if blocks > 0:
            _measured_s_per_block[:] = [seconds / blocks]

    def spend(self, seconds: float) -> None:
        """An epoch end cost ``seconds`` of watchdog's work."""
        self._fill(self.clock())
        self.tokens -= seconds
        self.spent_s += seconds

    def share(self) -> float:
        """The epoch ends' share of the wall time so far."""
        wall = self.clock() - self.started
        return self.spent_s / wall if wall > 0 else 0.0
