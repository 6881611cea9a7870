"""Dataset identity is immune to address reuse, and threads with their own loops are kept apart
(issue 9, item 2)."""

from __future__ import annotations

import gc
import threading

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import watchdog
from tests.loops import at_a_freed_address, make_dataset, make_model


def _epochs_rebuilding_datasets(model, optimizer, x, y, xv, yv, epochs, dataset_ids):
    """A correct loop that builds both datasets (and loaders) inside the epoch loop."""
    for _ in range(epochs):
        model.train()
        # each new dataset at an address a freed one had (made so: the allocator does not promise it)
        train_ds = at_a_freed_address(lambda: TensorDataset(x, y), set(dataset_ids))
        dataset_ids.append(id(train_ds))
        for xb, yb in DataLoader(train_ds, batch_size=32):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        del train_ds
        gc.collect()  # the freed dataset's address is free for the next one
        eval_ds = at_a_freed_address(lambda: TensorDataset(xv, yv), set(dataset_ids))
        model.eval()
        dataset_ids.append(id(eval_ds))
        with torch.no_grad():
            for xb, yb in DataLoader(eval_ds, batch_size=32):
                model(xb)
        del eval_ds
        gc.collect()


def test_datasets_rebuilt_each_epoch_at_reused_addresses_give_no_findings(report_dir):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 8, generator=g), torch.randint(0, 2, (128,), generator=g)
    xv, yv = torch.randn(64, 8, generator=g), torch.randint(0, 2, (64,), generator=g)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    dataset_ids: list[int] = []
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        _epochs_rebuilding_datasets(model, optimizer, x, y, xv, yv, 12, dataset_ids)
    # a new dataset really took a freed one's address (else this test proves nothing)
    assert len(set(dataset_ids)) < len(dataset_ids), dataset_ids
    assert [f for f in run.findings if f.severity in ("error", "warning")] == [], [str(f) for f in run.findings]
    assert not any(f.code.startswith("overlap/") for f in run.findings)
    assert run.loop.epoch == 12  # each rebuilt training loader carries the epochs on
    overlap = next(c for c in run.checks if c.name == "overlap")
    assert len(overlap.train_union) <= 1 and len(overlap.evaluated) <= 1  # freed datasets forgotten


def test_real_overlap_still_found_when_datasets_are_rebuilt(report_dir):
    ds = make_dataset(400)
    train_ds, val_ds = random_split(ds, [300, 100], generator=torch.Generator().manual_seed(0))
    leaked = list(train_ds.indices[:20])
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        for _ in range(3):
            model.train()
            for xb, yb in DataLoader(torch.utils.data.Subset(ds, list(train_ds.indices)), batch_size=32):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(xb), yb).backward()
                optimizer.step()
            gc.collect()
            model.eval()
            with torch.no_grad():
                for xb, _ in DataLoader(torch.utils.data.Subset(ds, list(val_ds.indices) + leaked), batch_size=32):
                    model(xb)
            gc.collect()
    found = [f for f in run.findings if f.code == "overlap/train-eval"]
    assert found, [str(f) for f in run.findings]  # one per evaluation loader: a new one each epoch
    assert {f.evidence["overlap"] for f in found} == {20}


class _Interleave:
    """Makes two threads take turns at fixed points, so the interleaving is the same every run."""

    def __init__(self):
        self.cond = threading.Condition()
        self.turn = 0

    def wait_for(self, turn: int) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.turn >= turn, timeout=30):
                raise TimeoutError(f"turn {turn} never came")

    def advance(self) -> None:
        with self.cond:
            self.turn += 1
            self.cond.notify_all()


def test_two_threads_with_their_own_loops_are_kept_apart(report_dir):
    """Thread B validates before training; thread A steps while B's evaluation pass is open.

    The interleaving is forced at one point (A's first step happens inside B's first evaluation
    pass), so it is the same on every run; A's step must not be counted on B's pass.
    """
    turns = _Interleave()
    errors: list[BaseException] = []

    def loop(seed: int, evaluate_first: bool) -> None:
        try:
            ds = make_dataset(64, seed=seed)
            train_ds, val_ds = random_split(ds, [48, 16], generator=torch.Generator().manual_seed(seed))
            model = make_model(seed=seed)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
            train_loader, val_loader = DataLoader(train_ds, batch_size=16), DataLoader(val_ds, batch_size=8)

            def evaluate(pause: bool) -> None:
                model.eval()
                with torch.no_grad():
                    for i, (xb, _) in enumerate(val_loader):
                        model(xb)
                        if pause and i == 0:  # B's evaluation pass is open: A steps now
                            turns.advance()  # -> 2
                            turns.wait_for(3)

            def train(pause: bool) -> None:
                model.train()
                for i, (xb, yb) in enumerate(train_loader):
                    optimizer.zero_grad()
                    nn.functional.cross_entropy(model(xb), yb).backward()
                    if pause and i == 0:
                        turns.advance()  # -> 1: B may open its evaluation pass
                        turns.wait_for(2)
                    optimizer.step()
                    if pause and i == 0:
                        turns.advance()  # -> 3

            if evaluate_first:
                turns.wait_for(1)
                evaluate(pause=True)
            for epoch in range(2):
                train(pause=not evaluate_first and epoch == 0)
                evaluate(pause=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            for _ in range(3):
                turns.advance()

    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        threads = [threading.Thread(target=loop, args=(1, False)), threading.Thread(target=loop, args=(2, True))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert run.loop.steps == 2 * 2 * 3
    assert [str(f) for f in run.findings if f.code.startswith("overlap/")] == []


# -- two dataset objects of the same data (issue 12: a DataModule's setup() loading per stage) -------------
class Images(torch.utils.data.Dataset):
    """A dataset that loads its samples from 'files' (here a tensor), as MNIST and ImageFolder do."""

    def __init__(self, root, data):
        self.root = root
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i], int(i % 2)


class Generated(torch.utils.data.Dataset):
    """A dataset that generates each sample: only a size, nothing that says what data it holds."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.full((8,), float(i)), int(i % 2)


def _fit_and_validate(report_dir, make_dataset_object):
    """setup('fit') and setup('validate') each load the dataset and split it without a seed."""
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(0)
    train_part, _ = random_split(make_dataset_object(), [96, 32])  # setup("fit")
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False) as run:
        for _ in range(2):
            for xb, yb in DataLoader(train_part, batch_size=32):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(xb), yb).backward()
                optimizer.step()
            _, val_part = random_split(make_dataset_object(), [96, 32])  # setup("validate"): a new object
            with torch.no_grad():
                for xb, _ in DataLoader(val_part, batch_size=32):
                    model(xb)
    return run


def test_two_objects_loading_the_same_files_are_one_dataset_and_their_splits_overlap(report_dir):
    data = torch.randn(128, 8, generator=torch.Generator().manual_seed(1))
    run = _fit_and_validate(report_dir, lambda: Images("/data/images", data.clone()))
    found = [f for f in run.findings if f.code == "overlap/train-eval"]  # one per validation split drawn
    assert found and all(f.evidence["base_dataset"]["objects"] >= 2 for f in found)
    assert all("dataset objects holding the same data" in f.message for f in found)


def test_objects_of_one_class_and_length_holding_different_data_are_not_tied(report_dir):
    seeds = iter(range(100))
    run = _fit_and_validate(report_dir, lambda: Images(
        "/data/images", torch.randn(128, 8, generator=torch.Generator().manual_seed(next(seeds)))))
    assert [f.code for f in run.findings if f.code.startswith("overlap/")] == []


def test_datasets_that_generate_their_samples_are_not_tied_by_their_size_alone(report_dir):
    run = _fit_and_validate(report_dir, lambda: Generated(128))
    assert [f.code for f in run.findings if f.code.startswith("overlap/")] == []
