"""The seed's checkpoint pair (issue 3): a save that leaves state out, and a resume that leaves it unloaded.

    python -m watchdog run examples/checkpoint_seed.py save   CKPT   # train 3 epochs, save each epoch
    python -m watchdog run examples/checkpoint_seed.py resume CKPT   # fresh Adam + cosine, load, train on

Expected findings: checkpoint/missing-optimizer-state and checkpoint/missing-scheduler-state on the
save; resume/scheduler-restarted (with the LR it should have) and resume/optimizer-state-absent on
the resume. `--fixed` saves and restores everything: no findings.
"""

import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def save_checkpoint(model, epoch, path):
    torch.save({'epoch': epoch, 'model_state_dict': model.state_dict()}, path)


def load_checkpoint(model, path):
    checkpoint = torch.load(path)
    model.load_state_dict(checkpoint['model_state_dict'])
    return checkpoint['epoch']


def save_full(model, optimizer, scheduler, epoch, path):
    torch.save({'epoch': epoch, 'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                'scheduler': scheduler.state_dict()}, path)


def load_full(model, optimizer, scheduler, path):
    checkpoint = torch.load(path)
    model.load_state_dict(checkpoint['model'])
    optimizer.load_state_dict(checkpoint['optimizer'])
    scheduler.load_state_dict(checkpoint['scheduler'])
    return checkpoint['epoch']


def main():
    mode, path = sys.argv[1], sys.argv[2]
    fixed = "--fixed" in sys.argv
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 128).reshape(64, 2)
    loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=16, shuffle=True)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100)
    start = 0
    if mode == "resume":
        start = (load_full(model, optimizer, scheduler, path) if fixed else load_checkpoint(model, path)) + 1
    for epoch in range(start, start + 3):
        for xb, yb in loader:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(xb), yb).backward()
            optimizer.step()
        scheduler.step()
        if fixed:
            save_full(model, optimizer, scheduler, epoch, path)
        else:
            save_checkpoint(model, epoch, path)
    print(f"trained epochs {start}..{start + 2}, lr {scheduler.get_last_lr()[0]:.3e}")


if __name__ == "__main__":
    main()
