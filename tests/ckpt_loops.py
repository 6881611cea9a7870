"""Small models and loops shared by the checkpoint tests (issue 3)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import watchdog

X = torch.linspace(-1, 1, 64).reshape(32, 2)
Y = X.sum(1, keepdim=True)


def loader():
    return DataLoader(TensorDataset(X, Y), batch_size=8)


def make(lr=1e-3, t_max=100):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max)
    return model, opt, sched


def train_epoch(model, opt, data):
    for x, y in data:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def codes(run, at_least="info"):
    return sorted(f.code for f in run.findings_at_least(at_least) if f.code.startswith(("checkpoint/", "resume/", "watchdog/")))


def watch(tmp_path, name="report", **kw):
    return watchdog.watch(report_dir=tmp_path / name, summary=False, **kw)
