"""The DataLoader probe and the features' pass captures (``PASS_CAPTURES``, issue 10).

The probe tracks passes, roles and epochs by itself; what a pass served is a capture's business. A
run with no capture still counts its epochs (a new loader each epoch over one dataset is one
stream, immune to address reuse), and a second capture beside the overlap feature's sees every
index batch and every consumed batch without changing a finding.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset, TensorDataset, random_split

import watchdog
from tests.loops import at_a_freed_address, evaluate, make_dataset, make_model, train_epoch
from watchdog.core import loaders
from watchdog.core.registry import pass_captures
from watchdog.overlap.capture import IndexCapture


def test_the_overlap_feature_declares_its_index_capture():
    assert IndexCapture in pass_captures()


def _leaky_loop(epochs: int = 3) -> None:
    ds = make_dataset(200)
    train_ds, val_ds = random_split(ds, [150, 50], generator=torch.Generator().manual_seed(0))
    leaked = Subset(ds, list(val_ds.indices) + list(train_ds.indices[:9]))
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(epochs):
        train_epoch(model, DataLoader(train_ds, batch_size=16, shuffle=True), optimizer)  # a new loader each epoch
        evaluate(model, DataLoader(leaked, batch_size=16))


def test_without_any_capture_passes_roles_and_epochs_are_still_tracked(report_dir, monkeypatch):
    monkeypatch.setattr(loaders, "pass_captures", lambda: [])
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        _leaky_loop()
    assert run.loop.epoch == 3  # three loaders over one dataset: one stream
    events = [json.loads(line) for line in (report_dir / "events.jsonl").read_text().splitlines()]
    ends = [e["data"] for e in events if e["kind"] == "loader_pass_end"]
    assert [(d["loader_id"], d["role"], d["complete"]) for d in ends] == [
        (f"L{n}", "train" if n % 2 else "eval", True) for n in range(1, 7)]
    assert all("samples" not in d for d in ends)  # what a pass served is the captures' to say
    assert not [f for f in run.findings if f.code == "overlap/train-eval"]  # nobody captured indices
    assert not [f for f in run.findings if f.code == "watchdog/internal-error"]


def test_without_any_capture_rebuilt_datasets_at_reused_addresses_stay_apart(report_dir, monkeypatch):
    monkeypatch.setattr(loaders, "pass_captures", lambda: [])
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 8, generator=g), torch.randint(0, 2, (96,), generator=g)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    addresses, dataset_ids = [], []
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        for _ in range(12):
            for train in (True, False):
                # a freed dataset's address again (the allocator does not promise it: made, not hoped for)
                ds = at_a_freed_address(lambda: TensorDataset(x, y) if train else TensorDataset(x[:64], y[:64]),
                                        set(addresses))
                addresses.append(id(ds))
                loader = DataLoader(ds, batch_size=32)
                train_epoch(model, loader, optimizer) if train else evaluate(model, loader)
                dataset_ids.append(run.loop.loaders[id(loader)].dataset_id)
                del ds, loader
                gc.collect()  # the freed dataset's address is free for the next one
    assert len(set(addresses)) < len(addresses), addresses  # an address was reused (else this proves nothing)
    assert len(set(dataset_ids)) == len(dataset_ids)  # each new dataset got a key of its own
    assert run.loop.epoch == 12  # each rebuilt training loader at the same place carries the epochs on


class BatchCounter:
    """A second pass capture: counts the index batches sampled and the batches read, per pass."""

    seen: list[tuple[int, int, int]] = []  # (pass index, index batches noted, batches read)

    def __init__(self, run: Any, dataset_keys: Any):
        self.run = run

    def begin_pass(self, record: Any, dataset: Any, frames: list) -> "CountedPass":
        return CountedPass(record.index)


class CountedPass:
    def __init__(self, index: int):
        self.index, self.noted, self.read = index, 0, 0

    def note_sampled(self, batch: Any) -> None:
        self.noted += 1

    @property
    def sampled_any(self) -> bool:
        return self.noted > 0

    reads_batches = True

    def read_batch(self, data: Any) -> bool:
        self.read += 1
        return True

    def flush(self, record: Any, count: int) -> None:
        pass

    def stop(self) -> None:
        pass

    def end(self, record: Any, count: int) -> tuple[dict, dict]:
        BatchCounter.seen.append((self.index, self.noted, self.read))
        return {}, {"counted": (self.noted, self.read)}


def _findings(run: Any) -> list[tuple[str, str]]:
    return sorted((f.code, f.message) for f in run.findings if not f.code.startswith("memory/"))


def test_a_second_capture_sees_every_batch_and_changes_no_finding(tmp_path, monkeypatch):
    with watchdog.watch(report_dir=tmp_path / "alone", summary=False, fingerprint=True) as alone:
        _leaky_loop()
    BatchCounter.seen = []
    monkeypatch.setattr(loaders, "pass_captures", lambda: [IndexCapture, BatchCounter])
    with watchdog.watch(report_dir=tmp_path / "both", summary=False, fingerprint=True) as both:
        _leaky_loop()
    assert _findings(both) == _findings(alone)
    assert any(code == "overlap/train-eval" for code, _ in _findings(both))
    batches = -(-150 // 16), -(-59 // 16)  # training, evaluation: every batch sampled and read
    assert BatchCounter.seen == [(0, n, n) for _ in range(3) for n in batches]
