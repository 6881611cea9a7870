"""Small real training loops shared by the tests."""

from __future__ import annotations

from typing import Any, Callable, Collection

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_dataset(n: int = 400, features: int = 8, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, features, generator=g), torch.randint(0, 2, (n,), generator=g))


def at_a_freed_address(make: Callable[[], Any], freed: Collection[int], tries: int = 100_000) -> Any:
    """``make()``'s object, made again until it sits at one of the ``freed`` addresses (the ``id()`` of
    objects freed since), as a dataset rebuilt in an epoch loop often does.

    CPython gives no such promise: its allocator hands out the block freed last in a pool, so anything
    of the same size freed after the dataset (a ``gc.collect()``, the DataLoader's own attributes) or
    allocated before it takes the freed block first, and the run to run heap layout decides. So a test
    that needs an address reused makes it: each miss is held, so the next try takes another free
    block, until one of the freed blocks comes (then the misses are dropped); after ``tries`` misses,
    the last object (the caller's check that an address was reused then fails, saying so).
    """
    obj = make()
    held = []
    while freed and id(obj) not in freed and len(held) < tries:
        held.append(obj)
        obj = make()
    return obj


def make_model(features: int = 8, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, 2))


def train_epoch(model, loader, optimizer):
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def evaluate(model, loader):
    model.eval()
    total = 0.0
    with torch.no_grad():
        for x, y in loader:
            total += nn.functional.cross_entropy(model(x), y).item()
    return total


def fit(model, train_loader, val_loader, epochs: int = 2, lr: float = 1e-2):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        train_epoch(model, train_loader, optimizer)
        if val_loader is not None:
            evaluate(model, val_loader)
    return optimizer


def loader(dataset, batch_size=32, shuffle=False, **kwargs) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, **kwargs)


class OwnState(nn.Module):
    """A model class with its own ``__getstate__`` (bypassing ``nn.Module.__getstate__``)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 2)

    def forward(self, x):
        return self.lin(x)

    def __getstate__(self):
        return self.__dict__.copy()
