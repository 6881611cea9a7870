"""The culprit walk's bounds and naming steps that the leaking loops do not reach: module globals,
the deadline (names from frames only), and ``max_holders`` (the rest counted as one graph-only holder)."""

from __future__ import annotations

import gc

import torch

from watchdog.memory.census import take_census
from watchdog.memory.holders import find_holders

MODULE_HISTORY: list = []


class Store:
    def __init__(self) -> None:
        self.rows: list = []


def _new_since(before):
    after = take_census(previous=before)
    return after.compare_to(before)


def test_a_module_global_is_named_with_its_module_and_file():
    gc.collect()
    before = take_census()
    MODULE_HISTORY.extend(torch.ones(3) for _ in range(10))
    try:
        holders = find_holders(_new_since(before), budget_s=60)
        (top,) = [h for h in holders if h.name == "MODULE_HISTORY"]
        assert top.kind == "list" and top.tensors == 10
        assert top.owner == f"module {__name__}" and top.where == "test_memory_holders.py"
    finally:
        MODULE_HISTORY.clear()


def test_past_the_deadline_names_come_from_frames_only():
    gc.collect()
    before = take_census()
    losses = [torch.ones(2) for _ in range(10)]
    store = Store()
    store.rows.extend(torch.zeros(2) for _ in range(12))
    diff = _new_since(before)
    walked = {h.name for h in find_holders(diff, budget_s=60)}
    assert {"losses", "store.rows"} <= walked
    over_budget = {h.name: h for h in find_holders(diff, budget_s=0)}
    assert "losses" in over_budget  # a local of this frame: no gc walk needed
    assert "store.rows" not in over_budget and over_budget["<unnamed list>"].tensors == 12
    del losses, store


def test_holders_past_max_holders_are_counted_as_one_graph_only_rest():
    gc.collect()
    before = take_census()
    a = [torch.ones(2) for _ in range(30)]
    b = [torch.ones(2) for _ in range(20)]
    c = [torch.ones(2) for _ in range(10)]
    holders = find_holders(_new_since(before), max_holders=2, budget_s=60)
    by_name = {h.name: h for h in holders}
    assert by_name["a"].tensors == 30 and by_name["b"].tensors == 20 and "c" not in by_name
    assert by_name["<no Python container>"].kind == "graph-only"
    assert by_name["<no Python container>"].tensors >= 10  # c's tensors, and whatever else is new
    del a, b, c


def test_a_container_the_first_sample_misses_is_found_by_the_next_round(monkeypatch):
    # 4,000 new tensors in one list, 16 in a second one: a stride sample of 64 (one in 251) can
    # miss the second list (here it is made to), whose tensors would then be reported as held by no
    # Python container. The next round samples only what the first list does not hold, and names it.
    import watchdog.memory.holders as holders_module

    stride_sample = holders_module._stride_sample
    samples = []

    def first_sample_misses_small(items, limit):
        if not samples:
            items = [t for t in items if not any(t is s for s in small)]
        samples.append(len(items))
        return stride_sample(items, limit)

    monkeypatch.setattr(holders_module, "_stride_sample", first_sample_misses_small)
    gc.collect()
    before = take_census()
    big = [torch.ones(1) for _ in range(4000)]
    small = [torch.zeros(1) for _ in range(16)]
    diff = _new_since(before)
    named = {h.name: h for h in find_holders(diff, budget_s=60)}
    assert samples[:2] == [4000, 16]  # the second round sampled what the big list does not hold
    assert named["big"].tensors == 4000 and named["small"].tensors == 16
    assert "<no Python container>" not in named
    samples.clear()
    monkeypatch.setattr(holders_module, "SAMPLE_ROUNDS", 1)  # one round: the small list goes unnamed
    one_round = {h.name: h for h in find_holders(diff, budget_s=60)}
    assert "small" not in one_round and one_round["<no Python container>"].tensors == 16
    del big, small
