"""Training loops that leak memory (and one that does not), shared by the memory tests.

Each loop takes ``epochs`` and an optional ``epoch_end`` callback called at the end of every
training pass (unit tests take a census there; under ``watchdog.watch`` the DataLoader probe marks
epochs by itself). The lines that grow the containers are what the findings must name.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def _data(n: int, features: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, features, generator=g), torch.randn(n, 1, generator=g))


def _model(features: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def _noop(epoch: int) -> None:
    pass


def seed_leak(epochs: int, epoch_end=_noop) -> None:
    """The seed's failure 4: every step's loss and output kept, with their graphs."""
    loader = DataLoader(_data(256, 16, 0), batch_size=16)
    model = _model(16, 32)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    all_losses = []
    all_outputs = []
    for epoch in range(epochs):
        for x, y in loader:
            output = model(x)
            loss = nn.functional.mse_loss(output, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            all_losses.append(loss)
            all_outputs.append(output)
        epoch_end(epoch)
    return model


def eval_without_no_grad(epochs: int, epoch_end=_noop) -> None:
    """Validation without torch.no_grad() whose losses are kept: every graph and its activations
    (a 256x2048 ReLU output, 2 MB a batch here) stay alive: 24 MB an epoch."""
    train = DataLoader(_data(64, 16, 1), batch_size=64)
    val = DataLoader(_data(12 * 256, 16, 2), batch_size=256)
    model = _model(16, 2048)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    val_losses = []
    for epoch in range(epochs):
        model.train()
        for x, y in train:
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        for x, y in val:
            val_losses.append(nn.functional.mse_loss(model(x), y))
        epoch_end(epoch)


class FeatureStore:
    def __init__(self):
        self.feature_cache = {}


def dict_cache(epochs: int, epoch_end=_noop) -> None:
    """A dict cache of detached tensors that only grows: one entry per (epoch, batch)."""
    loader = DataLoader(_data(256, 16, 3), batch_size=16)
    model = _model(16, 64)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    store = FeatureStore()
    for epoch in range(epochs):
        for i, (x, y) in enumerate(loader):
            hidden = model[1](model[0](x))
            loss = nn.functional.mse_loss(model[2](hidden), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            store.feature_cache[(epoch, i)] = hidden.detach()
        epoch_end(epoch)


def swinging_control(epochs: int, epoch_end=_noop) -> None:
    """Correct loop whose memory swings by tens of MB between epochs without accumulating:
    a per-epoch scratch buffer of 8, 40 or 24 MB, a bounded cache, losses kept as floats, and
    an evaluation under no_grad every epoch."""
    loader = DataLoader(_data(256, 16, 4), batch_size=16)
    val_loader = DataLoader(_data(64, 16, 8), batch_size=16)
    model = _model(16, 64)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    history = []
    val_history = []
    recent = {}
    scratch = None
    for epoch in range(epochs):
        model.train()
        scratch = [torch.zeros(2 * 1024 * 1024) for _ in range((1, 5, 3)[epoch % 3])]
        for i, (x, y) in enumerate(loader):
            output = model(x)
            loss = nn.functional.mse_loss(output, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(loss.item())
            recent[i % 4] = output.detach()
        history.append(float(sum(scratch[0][:1])))
        epoch_end(epoch)
        model.eval()
        with torch.no_grad():
            val_history.append(sum(nn.functional.mse_loss(model(x), y).item() for x, y in val_loader))
    return model


def long_epoch(steps: int, grow: bool, pause: float) -> list:
    """One long epoch (the loop stops before the pass ends): with ``grow``, every step keeps a
    1 MB buffer (at most 100 MB)."""
    import time

    kept = []
    model = _model(16, 16)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(_data(steps * 4, 16, 5), batch_size=4)
    for x, y in loader:
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        scratch = torch.ones(256 * 1024)  # 1 MB, touched
        if grow:
            kept.append(scratch)
        time.sleep(pause)
        if len(kept) >= 100:
            break
    return kept


class Trainer:
    """Keeps per-step history in a dict of containers on ``self``: named through the object."""

    def __init__(self):
        from collections import deque

        self.model = _model(8, 16)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.history = {"loss": [], "batches": deque()}
        self.loader = DataLoader(_data(256, 8, 6), batch_size=16)

    def fit(self, epochs: int, epoch_end=_noop) -> None:
        for epoch in range(epochs):
            self.train_epoch()
            epoch_end(epoch)

    def train_epoch(self) -> None:
        for x, y in self.loader:
            output = self.model(x)
            loss = nn.functional.mse_loss(output, y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.history["loss"].append(loss)
            self.history["batches"].append((output, y))


def concatenated_predictions(epochs: int, epoch_end=_noop) -> None:
    """Predictions accumulated by concatenating onto one tensor: the count stays flat while the
    tensor grows 2 MB an epoch (8 steps of 64x1024 float32)."""
    loader = DataLoader(_data(512, 16, 7), batch_size=64)
    model = nn.Linear(16, 1024)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    all_preds = torch.empty(0, 1024)
    for epoch in range(epochs):
        for x, y in loader:
            pred = model(x)
            loss = pred.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            all_preds = torch.cat([all_preds, pred.detach()])
        epoch_end(epoch)
