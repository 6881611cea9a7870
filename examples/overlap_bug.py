"""The seed's failure 1: validation data that the training loader also serves.

    watchdog run examples/overlap_bug.py            # reports overlap/train-eval (332 of 400, 83.0%)
    watchdog run --fail-on error examples/overlap_bug.py   # stops after the first evaluation, exit 86
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

torch.manual_seed(0)
ds = TensorDataset(torch.randn(2000, 8), torch.randint(0, 2, (2000,)))
# Bug: two random_split calls with different generators give overlapping parts.
train_ds, _ = random_split(ds, [1600, 400], generator=torch.Generator().manual_seed(1))
_, val_ds = random_split(ds, [1600, 400], generator=torch.Generator().manual_seed(2))
train_loader = DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=2)
val_loader = DataLoader(val_ds, batch_size=64)

model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)


def evaluate(model, loader):
    model.eval()
    with torch.no_grad():
        return sum(nn.functional.cross_entropy(model(x), y).item() for x, y in loader) / len(loader)


if __name__ == "__main__":
    for epoch in range(3):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        print(f"epoch {epoch}: val_loss={evaluate(model, val_loader):.4f}")
