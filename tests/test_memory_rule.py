"""The growth rule on series: leaks, swings, plateaus, warm-up, gaps; the within-epoch windows."""

from __future__ import annotations

import pytest

from watchdog.memory.growth import MB, THRESHOLDS, Thresholds, steady_growth, window_growth

COUNT = THRESHOLDS["tensor_count"]
RSS = THRESHOLDS["rss"]


def test_constant_leak_caught_with_the_fourth_sample():
    series = [100, 164, 228]
    assert steady_growth(series, COUNT) is None
    growth = steady_growth(series + [292], COUNT)
    assert growth is not None and growth.rate == 64 and growth.since_index == 0


def test_swings_and_plateaus_are_not_growth():
    assert steady_growth([10, 30, 20, 40, 25, 45, 30], COUNT) is None  # swings
    assert steady_growth([100, 500, 900, 1000, 1000, 1000], COUNT) is None  # a bounded cache fills up
    assert steady_growth([100, 104, 108, 112, 116], COUNT) is None  # a tensor an epoch: bookkeeping


def test_inconsistent_increments_are_not_growth():
    assert steady_growth([0, 10, 100, 110, 300], COUNT) is None


def test_warm_up_bump_then_steady_growth_is_caught_one_epoch_later():
    series = [100, 900, 964, 1028]
    assert steady_growth(series, COUNT) is None
    growth = steady_growth(series + [1092], COUNT)
    assert growth is not None and growth.rate == 64 and growth.since_index == 1


def test_gaps_are_divided_by_the_epochs_they_span():
    series = [100, None, None, 292, None, None, 484, None, None, 676]
    growth = steady_growth(series, COUNT)
    assert growth is not None and growth.rate == 64


def test_rss_needs_four_large_consistent_increments():
    mb = [x * MB for x in (500, 540, 578, 617, 655)]
    assert steady_growth(mb[:4], RSS) is None
    growth = steady_growth(mb, RSS)
    assert growth is not None and 37 * MB < growth.rate < 40 * MB
    noisy = [x * MB for x in (500, 516, 1020, 900, 1200, 1100)]  # glibc keeps and returns memory
    assert steady_growth(noisy, RSS) is None


def test_growth_projection():
    growth = steady_growth([0, 21 * MB, 42 * MB, 63 * MB], Thresholds(min_step=1 * MB))
    assert growth.epochs_until(80 * 1024 * MB) == (80 * 1024 * MB - 63 * MB) / (21 * MB)


def test_window_growth_finds_a_rising_floor_and_ignores_a_flat_one():
    steps = range(0, 200)
    rising = [(s, 100 * MB + s * MB + (30 * MB if s % 7 == 0 else 0)) for s in steps]  # spikes above the floor
    found = window_growth(rising, min_step=8 * MB)
    assert found is not None and 0.9 * MB < found[0] < 1.1 * MB
    flat = [(s, 100 * MB + (s % 13) * 4 * MB) for s in steps]
    assert window_growth(flat, min_step=8 * MB) is None
    assert window_growth(rising[:8], min_step=8 * MB) is None  # too few samples to judge


class FakeClock:
    """The budget's clock, moved by the test: an epoch takes what the test says, nothing else moves it."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def simulate_census_cadence(epoch_s, census_s, epochs, other_s=0.0001, blocks=500_000, blocks_per_epoch=0,
                            monkeypatch=None):
    """Epoch ends as the memory probe drives the budget: the census (when due) costs ``census_s``,
    every epoch end ``other_s`` more; the heap grows by ``blocks_per_epoch`` each epoch (a leak).
    Returns the epochs (1-based) with a census, and the budget."""
    from watchdog.memory.budget import CensusBudget

    clock = FakeClock()
    heap = [blocks]
    budget = CensusBudget(clock=clock, blocks=lambda: heap[0])
    censuses = []
    for epoch in range(1, epochs + 1):
        clock.now += epoch_s
        heap[0] += blocks_per_epoch
        started = clock.now
        if budget.census_due():
            allowance = budget.census_allowance()
            if census_s > allowance:  # as take_census(allowance_s=...): stopped there, the whole estimated
                clock.now += allowance
                budget.census_stopped(allowance, census_s * 1.2)
            else:
                clock.now += census_s
                budget.census_taken(census_s)
                censuses.append(epoch)
        clock.now += other_s
        budget.spend(clock.now - started)
        assert budget.spent_s <= 0.01 * (clock.now - budget.started) + census_s * 0.2 + 1e-9, epoch
    return censuses, budget


def test_census_cadence_keeps_epoch_ends_under_one_percent_from_the_first_epoch(monkeypatch):
    import watchdog.memory.budget as budget_module

    monkeypatch.setattr(budget_module, "_measured_s_per_block", [])  # no earlier census in this process
    # Before any census: predicted from the heap (500k blocks x 40 ns = 20 ms), so the first one
    # waits for 100 x 20 ms = 2 s of run; a 2-epoch toy run of 100 ms epochs gets none.
    censuses, budget = simulate_census_cadence(epoch_s=0.1, census_s=0.015, epochs=2)
    assert censuses == [] and budget.share() < 0.01
    for epoch_s, census_s, spacing in ((0.04, 0.015, 50), (1.0, 0.015, 2), (0.04, 0.078, 260), (1.0, 0.078, 8)):
        censuses, budget = simulate_census_cadence(epoch_s, census_s, epochs=3000)
        assert budget.share() <= 0.01
        gaps = [b - a for a, b in zip(censuses, censuses[1:])][1:]  # the first one ran on the heap estimate
        assert gaps and all(abs(g - spacing) <= spacing * 0.1 + 1 for g in gaps), (epoch_s, census_s, gaps[:5])
    # Long epochs (100 x the census or more): every epoch, so a leak is reported at epoch 4.
    censuses, budget = simulate_census_cadence(epoch_s=60.0, census_s=0.078, epochs=10)
    assert censuses == list(range(1, 11)) and budget.share() < 0.01


def test_census_cadence_holds_while_the_heap_grows_every_epoch(monkeypatch):
    """A leak grows the heap a little every epoch, so each prediction of the census's cost is a little
    above the last: the bucket must fill up to the new prediction, or no census ever comes again and
    the leak it is there for is never reported."""
    import watchdog.memory.budget as budget_module
    from watchdog.memory.growth import EpochSample, EpochSeries

    for epoch_s, census_s, spacing in ((0.04, 0.015, 50), (1.0, 0.015, 2), (1.0, 0.078, 8)):
        monkeypatch.setattr(budget_module, "_measured_s_per_block", [])
        censuses, budget = simulate_census_cadence(epoch_s, census_s, epochs=600, blocks_per_epoch=60)
        assert budget.share() <= 0.01
        gaps = [b - a for a, b in zip(censuses, censuses[1:])][1:]
        assert len(censuses) >= 600 // spacing * 0.8 and max(gaps) <= spacing * 1.2 + 1, (epoch_s, census_s, censuses[:8])
    # The growth rule on those censuses: a leak of 16 tensors an epoch, reported at the 4th census.
    monkeypatch.setattr(budget_module, "_measured_s_per_block", [])
    censuses, _ = simulate_census_cadence(1.0, 0.078, epochs=60, blocks_per_epoch=60)
    series, reported = EpochSeries(), None
    for epoch in range(1, 61):
        count = 10_000 + 16 * epoch if epoch in censuses else None
        verdicts = series.add(EpochSample(epoch=epoch, steps=epoch, tensor_count=count))
        if reported is None and any(v.series == "tensors" for v in verdicts):
            reported = epoch
    assert reported == censuses[3]


def test_a_census_guessed_too_cheap_costs_no_more_than_the_budget_held(monkeypatch):
    """Before any census the cost is a guess from the heap's size; in a heap of small tensors it can be
    many times too low. The census is allowed what the bucket holds and stops there: at no epoch end
    do the epoch ends pass 1% of the time (``simulate_census_cadence`` asserts it after each), and the
    next attempt, planned for the stopped one's estimate, completes."""
    import watchdog.memory.budget as budget_module

    for epoch_s, census_s in ((0.04, 0.078), (1.0, 0.5), (0.1, 2.0)):
        monkeypatch.setattr(budget_module, "_measured_s_per_block", [])
        monkeypatch.setattr(budget_module, "DEFAULT_S_PER_BLOCK", census_s / 500_000 / 20)  # 20x too low
        censuses, budget = simulate_census_cadence(epoch_s, census_s, epochs=6000)
        assert budget.stopped == 1 and budget.censuses == len(censuses) >= 2, (epoch_s, census_s)
        assert budget.share() <= 0.01
    # Without the allowance (the census run whole), the first census alone would pass the 1%:
    monkeypatch.setattr(budget_module, "_measured_s_per_block", [])
    monkeypatch.setattr(budget_module, "DEFAULT_S_PER_BLOCK", 2.0 / 500_000 / 20)
    budget = budget_module.CensusBudget(clock=FakeClock(), blocks=lambda: 500_000)
    budget.clock.now += 10.0
    assert budget.census_due() and budget.census_allowance() == pytest.approx(0.1)  # what 10 s buys


def test_census_cadence_pays_back_an_epoch_end_that_cost_more_than_predicted(monkeypatch):
    from watchdog.memory.budget import CensusBudget

    clock = FakeClock()
    budget = CensusBudget(clock=clock, blocks=lambda: 1000)
    clock.now += 10.0
    assert budget.census_due()
    budget.census_taken(0.02)
    budget.spend(0.52)  # a culprit walk of half a second on top of the census
    due = []
    for _ in range(60):
        clock.now += 1.0
        due.append(budget.census_due())
        budget.spend(0.0)
    assert due.index(True) == 53  # ~0.52 s of debt, then 20 ms for the census, at 10 ms of budget per second
    # A quiet stretch buys one census, not a burst.
    clock.now += 3600.0
    assert budget.census_due()
    budget.census_taken(0.02)
    budget.spend(0.02)
    clock.now += 0.1
    assert not budget.census_due()


def _sample(epoch, count=None, rss=None):
    from watchdog.memory.growth import EpochSample

    return EpochSample(epoch=epoch, steps=epoch * 10, tensor_count=count, tensor_bytes=None, rss=rss)


def test_sparse_samples_give_per_epoch_rates_from_the_epochs_between_them():
    from watchdog.memory.growth import EpochSeries

    series = EpochSeries()  # a census every 3rd epoch, and no sample at all for the epochs between
    verdicts = []
    for epoch in (1, 4, 7, 10):
        verdicts = series.add(_sample(epoch, count=100 + 64 * (epoch - 1)))
    (tensors,) = [v for v in verdicts if v.series == "tensors"]
    assert tensors.growth.rate == 64 and tensors.growth.increments == (64, 64, 64)
    assert tensors.growth.since_index == 0  # from the end of epoch 1
    # Epoch-end samples without a census (count None) between them read the same.
    with_gaps = EpochSeries()
    for epoch in range(1, 11):
        verdicts = with_gaps.add(_sample(epoch, count=100 + 64 * (epoch - 1) if epoch % 3 == 1 else None))
    assert [v.growth.rate for v in verdicts if v.series == "tensors"] == [64]
    assert with_gaps.recent_rate("tensor_count") == 64


def test_incremental_series_agree_with_the_rule_on_the_whole_series():
    import random

    from watchdog.memory.growth import EpochSeries

    rng = random.Random(7)
    for trial in range(40):
        series, counts, rss = EpochSeries(), [], []
        level, mem = 1000.0, 500 * MB
        for epoch in range(1, 30):
            level += rng.choice((0, 3, 40, 64, 64, 70, -50))
            mem += rng.choice((0, 20, 38, 40)) * MB
            count = level if rng.random() < 0.7 else None
            counts.append(count)
            rss.append(mem)
            verdicts = {v.series: v.growth for v in series.add(_sample(epoch, count=count, rss=mem))}
            assert verdicts.get("tensors") == steady_growth(counts, COUNT)
            assert verdicts.get("rss") == steady_growth(rss, RSS)


def test_series_state_stays_bounded_over_a_long_run():
    from watchdog.memory.growth import KEPT_SAMPLES, EpochSeries

    series = EpochSeries()
    for epoch in range(1, 10_001):
        series.add(_sample(epoch, count=1000 + (epoch % 5), rss=800 * MB))
    assert series.count == 10_000 and len(series.samples) == KEPT_SAMPLES
    assert series.samples[0].epoch == 10_000 - KEPT_SAMPLES + 1
    for tail in series.tails.values():
        assert len(tail.judged) <= tail.thresholds.window + 1 and len(tail.recent) <= 4
