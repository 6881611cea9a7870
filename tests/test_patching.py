"""One wrapper per patched function, hooks removable by their own undo (issue 10, item 4)."""
from __future__ import annotations

import json
import types

import pytest
import torch

import watchdog
from tests.loops import loader, make_dataset, make_model, train_epoch
from watchdog.core.patching import FunctionPatch


def target_module():
    calls = []
    module = types.ModuleType("target")

    def work(x, scale=1):
        calls.append(x)
        if x == "boom":
            raise ValueError("the user's own error")
        return x * scale

    module.work = work
    return module, calls


def test_two_hooks_share_one_wrapper_and_each_removes_only_itself():
    module, calls = target_module()
    original = module.work
    seen_a, seen_b = [], []
    undo_a = FunctionPatch.hook(module, "work", lambda a, k: seen_a.append((a, k)), on_error=print)
    wrapper = module.work
    undo_b = FunctionPatch.hook(module, "work", lambda a, k: seen_b.append(a), on_error=print)
    assert module.work is wrapper and module.work.__wrapped__ is original
    assert module.work(3, scale=2) == 6 and calls == [3]
    assert seen_a == [((3,), {"scale": 2})] and seen_b == [(3,)]
    undo_a()
    undo_a()  # idempotent
    module.work(4)
    assert len(seen_a) == 1 and seen_b[-1] == (4,)
    undo_b()
    assert module.work is original


def test_removing_watchdogs_hook_never_clobbers_a_later_patch():
    module, calls = target_module()
    original = module.work
    undo = FunctionPatch.hook(module, "work", lambda a, k: None, on_error=print)
    ours = module.work

    def theirs(*args, **kwargs):  # someone wraps the function after watchdog did
        return ours(*args, **kwargs) + 1

    module.work = theirs
    undo()
    assert module.work is theirs  # their patch stays
    assert module.work(2) == 3 and calls == [2]  # ours is now a pass-through inside it
    # a later hook starts a fresh wrapper around what is there now
    undo2 = FunctionPatch.hook(module, "work", lambda a, k: None, on_error=print)
    assert module.work.__wrapped__ is theirs
    undo2()
    assert module.work is theirs and original is not theirs


def test_a_failing_hook_is_removed_and_reported_while_the_call_runs_once():
    module, calls = target_module()
    errors, seen = [], []

    def broken(args, kwargs):
        raise RuntimeError("watchdog bug")

    FunctionPatch.hook(module, "work", broken, on_error=errors.append)
    undo = FunctionPatch.hook(module, "work", lambda a, k: seen.append(a), on_error=errors.append)
    assert module.work(5) == 5 and module.work(6) == 6
    assert calls == [5, 6] and seen == [(5,), (6,)]
    assert [type(e) for e in errors] == [RuntimeError]  # reported once, then gone
    with pytest.raises(ValueError, match="the user's own error"):
        module.work("boom")
    assert calls[-1] == "boom" and seen[-1] == ("boom",)
    undo()


def test_a_watched_run_wraps_backward_once_and_puts_it_back(tmp_path):
    original = torch.autograd.backward
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        wrapper = torch.autograd.backward
        assert wrapper.__wrapped__ is original
        model = make_model()
        train_epoch(model, loader(make_dataset(64)), torch.optim.SGD(model.parameters(), lr=0.1))
    assert torch.autograd.backward is original
    events = [json.loads(line) for line in (tmp_path / "wd" / "events.jsonl").read_text().splitlines()]
    [train_pass] = [e["data"] for e in events if e["kind"] == "loader_pass_end"]
    assert train_pass["backwards"] == 2 and train_pass["steps"] == 2  # counted once per backward()
