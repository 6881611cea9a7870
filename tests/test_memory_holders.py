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
