"""Coverage is not lost: TorchScript models, generator and coroutine training functions (issue 9, item 7)."""

from __future__ import annotations

import asyncio

import pytest
import torch
from torch.utils.data import random_split

import watchdog
from tests.loops import evaluate, loader, make_dataset, make_model, train_epoch


def _leaky_split():
    ds = make_dataset(400)
    train_ds, val_ds = random_split(ds, [300, 100], generator=torch.Generator().manual_seed(0))
    val_ds.indices = list(val_ds.indices) + list(train_ds.indices[:10])  # 10 training samples leak
    return loader(train_ds, shuffle=True), loader(val_ds)


def test_a_torchscript_model_disables_only_model_hooking(report_dir):
    train_loader, val_loader = _leaky_split()
    model = torch.jit.script(make_model())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        for _ in range(2):
            train_epoch(model, train_loader, optimizer)
            evaluate(model, val_loader)
    codes = [f.code for f in run.findings]
    assert codes.count("overlap/train-eval") == 1, [str(f) for f in run.findings]
    assert next(f for f in run.findings if f.code == "overlap/train-eval").evidence["overlap"] == 10
    not_hooked = [f for f in run.findings if f.code == "watchdog/model-not-hooked"]
    assert len(not_hooked) == 1 and not_hooked[0].severity == "info"
    assert "`model`" in not_hooked[0].message or "model" in not_hooked[0].evidence["names"]
    assert "watchdog/internal-error" not in codes
    assert run.loop.epoch == 2


def test_a_torchscript_model_with_a_correct_split_has_only_the_info(report_dir):
    ds = make_dataset(400)
    train_ds, val_ds = random_split(ds, [300, 100], generator=torch.Generator().manual_seed(0))
    model = torch.jit.script(make_model())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        for _ in range(2):
            train_epoch(model, loader(train_ds, shuffle=True), optimizer)
            evaluate(model, loader(val_ds))
    assert [f.code for f in run.findings] == ["watchdog/model-not-hooked"]


def test_a_decorated_generator_is_watched_for_its_whole_life(report_dir):
    train_loader, val_loader = _leaky_split()

    @watchdog.watch(report_dir=report_dir, summary=False)
    def training(epochs):
        model = make_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for epoch in range(epochs):
            train_epoch(model, train_loader, optimizer)
            evaluate(model, val_loader)
            yield epoch

    epochs = training(2)
    assert watchdog.current_run() is None  # nothing runs before the first next()
    assert list(epochs) == [0, 1]
    run = training.watchdog_run
    assert watchdog.current_run() is None and run.status != "running"
    assert run.loop.epoch == 2
    assert [f.code for f in run.findings] == ["overlap/train-eval"]


def test_a_decorated_generator_closed_early_ends_its_run(report_dir):
    train_loader, val_loader = _leaky_split()

    @watchdog.watch(report_dir=report_dir, summary=False)
    def training():
        model = make_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        while True:
            train_epoch(model, train_loader, optimizer)
            evaluate(model, val_loader)
            yield

    epochs = training()
    next(epochs)
    assert watchdog.current_run() is training.watchdog_run
    epochs.close()
    assert watchdog.current_run() is None
    assert [f.code for f in training.watchdog_run.findings] == ["overlap/train-eval"]


def test_a_decorated_coroutine_is_watched_while_awaited(report_dir):
    train_loader, val_loader = _leaky_split()

    @watchdog.watch(report_dir=report_dir, summary=False)
    async def training(epochs):
        model = make_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(epochs):
            train_epoch(model, train_loader, optimizer)
            await asyncio.sleep(0)
            evaluate(model, val_loader)
        return "done"

    assert asyncio.run(training(2)) == "done"
    run = training.watchdog_run
    assert run.loop.epoch == 2 and run.loop.steps > 0
    assert [f.code for f in run.findings] == ["overlap/train-eval"]
    assert watchdog.current_run() is None


def test_a_decorated_async_generator_is_refused_with_a_clear_error():
    async def batches():
        yield 1

    with pytest.raises(TypeError, match=r"async generator function 'test_a_decorated_async_generator.*batches'.*"
                                        r"with watchdog.watch\(\) as run"):
        watchdog.watch(batches)
