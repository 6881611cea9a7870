"""Issue 12: "forgot to evaluate" vs "nothing to evaluate". A GAN with no held-out data gets info;
a loop that builds a validation loader (or split) and never iterates it gets the warning."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import watchdog


def _gan(epochs: int = 3) -> None:
    data = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=16)
    g, d = nn.Linear(2, 4), nn.Linear(4, 1)
    opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    for _ in range(epochs):
        for (real,) in data:
            opt_d.zero_grad()
            (d(g(torch.randn(16, 2)).detach()).mean() - d(real).mean()).backward()
            opt_d.step()
            opt_g.zero_grad()
            (-d(g(torch.randn(16, 2))).mean()).backward()
            opt_g.step()


def _forgets_validation(epochs: int = 3) -> None:
    ds = TensorDataset(torch.randn(96, 4), torch.randint(0, 2, (96,)))
    train_ds, val_ds = random_split(ds, [64, 32], generator=torch.Generator().manual_seed(0))
    train_loader = DataLoader(train_ds, batch_size=16)
    val_loader = DataLoader(val_ds, batch_size=16)  # built, never used
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(epochs):
        for x, y in train_loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()


def _missing(run):
    return [f for f in run.findings if f.code == "eval/missing-epochs"]


def test_a_gan_with_nothing_held_out_gets_info_not_a_warning(tmp_path):
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        _gan()
    [f] = _missing(run)
    assert f.severity == "info" and "no held-out data was found" in f.message
    assert f.evidence["held_out_data"] == []
    assert f.fix.startswith("Nothing to do if this run has nothing to evaluate on")  # no fix to apply blindly
    assert "for epoch in range(num_epochs)" in f.fix  # a plain loop: the plain loop's advice


def test_a_validation_loader_built_and_never_iterated_is_the_bug(tmp_path):
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        _forgets_validation()
    [f] = _missing(run)
    assert f.severity == "warning" and "no held-out data" not in f.message
    assert {"val_loader", "val_ds"} <= set(f.evidence["held_out_data"])
    assert "train_ds" not in f.evidence["held_out_data"] and "ds" not in f.evidence["held_out_data"]
    assert f.fix.startswith("Evaluate inside the epoch loop")  # held-out data exists: no "nothing to do"
