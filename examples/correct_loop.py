"""A correct loop: one seeded split, evaluation every epoch, full checkpoints. watchdog reports nothing.

    python examples/correct_loop.py      (uses the decorator)
"""

import os
import tempfile

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import watchdog


@watchdog.watch(report_dir=os.path.join(tempfile.gettempdir(), "watchdog-example"))
def train(model, train_loader, val_loader, optimizer, scheduler, epochs, checkpoint_path):
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        scheduler.step()
        model.eval()
        with torch.no_grad():
            val_loss = sum(nn.functional.cross_entropy(model(x), y).item() for x, y in val_loader)
        print(f"epoch {epoch}: val_loss={val_loss / len(val_loader):.4f}")
        torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict()}, checkpoint_path)


if __name__ == "__main__":
    torch.manual_seed(0)
    ds = TensorDataset(torch.randn(2000, 8), torch.randint(0, 2, (2000,)))
    train_ds, val_ds = random_split(ds, [1600, 400], generator=torch.Generator().manual_seed(0))
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    train(model, DataLoader(train_ds, batch_size=64, shuffle=True), DataLoader(val_ds, batch_size=64),
          optimizer, scheduler, 3, os.path.join(tempfile.gettempdir(), "watchdog-example.pt"))
    run = train.watchdog_run
    print(f"watchdog: {len(run.findings)} finding(s)")
