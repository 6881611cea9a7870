"""The seed's failure 4: every step's loss and output kept in lists, with their autograd graphs.

    WATCHDOG_MEMORY_CENSUS=every-epoch watchdog run examples/memory_leak.py   # ms epochs: no 1% budget
    # memory/tensor-growth at the end of epoch 4: list `all_losses` in train_with_memory_leak() at
    # memory_leak.py:29 holds 25 new tensors ..., keeping autograd graphs alive; fix: loss.item()
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
train_loader = DataLoader(TensorDataset(torch.randn(1600, 8), torch.randint(0, 2, (1600,))), batch_size=64)
model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)


def train_with_memory_leak(epochs):
    all_losses = []
    all_outputs = []
    for epoch in range(epochs):
        for x, y in train_loader:
            optimizer.zero_grad()
            output = model(x)
            loss = nn.functional.cross_entropy(output, y)
            loss.backward()
            optimizer.step()
            # Bug: the tensors (and their graphs) are kept; use loss.item() / output.detach().
            all_losses.append(loss)
            all_outputs.append(output)
        print(f"epoch {epoch}: mean loss {torch.stack(all_losses[-len(train_loader):]).mean().item():.4f}")


train_with_memory_leak(6)
