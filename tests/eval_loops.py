"""Small real training loops for the eval/... tests (issue 4): real DataLoaders, real tiny models."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

# Tiny models: one intra-op thread avoids OpenMP contention on a loaded 2-core machine.
torch.set_num_threads(1)


def make_model(dropout: bool = True, batchnorm: bool = True) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(8, 16)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(16))
    layers.append(nn.ReLU())
    if dropout:
        layers.append(nn.Dropout(0.2))
    layers.append(nn.Linear(16, 2))
    return nn.Sequential(*layers)


def make_data(n: int = 64, n_val: int = 16, batch_size: int = 8):
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(n, 8, generator=g), torch.randint(0, 2, (n,), generator=g))
    train_ds, val_ds = random_split(ds, [n - n_val, n_val], generator=torch.Generator().manual_seed(0))
    train_loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=batch_size)
    return train_loader, val_loader


def evaluate(model, loader, criterion, *, eval_mode: bool = True, no_grad: bool = True, restore: bool = False):
    if eval_mode:
        model.eval()
    total = 0.0
    with torch.set_grad_enabled(not no_grad):
        for data, target in loader:
            total += float(criterion(model(data), target).detach())
    if restore:
        model.train()
    return total


def train_one_epoch(model, loader, optimizer, criterion, *, set_train: bool = True):
    if set_train:
        model.train()
    for data, target in loader:
        optimizer.zero_grad()
        loss = criterion(model(data), target)
        loss.backward()
        optimizer.step()


def setup(**model_kwargs):
    torch.manual_seed(0)
    model = make_model(**model_kwargs)
    train_loader, val_loader = make_data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    criterion = nn.CrossEntropyLoss()
    return model, train_loader, val_loader, optimizer, criterion


def codes(run) -> list[str]:
    return sorted(f.code for f in run.findings)


def eval_codes(run) -> list[str]:
    """This issue's codes only (loops without DataLoaders also get an overlap/unchecked info)."""
    return sorted(f.code for f in run.findings if f.code.startswith("eval/"))


def finding(run, code):
    matches = [f for f in run.findings if f.code == code]
    assert len(matches) == 1, [str(f) for f in run.findings]
    return matches[0]
