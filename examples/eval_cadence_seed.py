"""The seed's failure 3: a training loop that validates only once, after all epochs.

    watchdog run examples/eval_cadence_seed.py                      # eval/missing-epochs (error)
    watchdog run examples/eval_cadence_seed.py --validate-every 1   # clean
    watchdog run --eval-every 2 examples/eval_cadence_seed.py --validate-every 2   # clean
    watchdog run examples/eval_cadence_seed.py --validate-every 1 --forget-train   # eval/train-in-eval-mode
"""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split


def evaluate(model, val_loader, criterion):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for data, target in val_loader:
            total += criterion(model(data), target).item() * len(data)
            count += len(data)
    return total / max(count, 1)


def train(model, train_loader, val_loader, optimizer, criterion, num_epochs, validate_every, forget_train):
    if forget_train:
        model.train()
    for epoch in range(num_epochs):
        if not forget_train:
            model.train()
        for data, target in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(data), target)
            loss.backward()
            optimizer.step()
        if validate_every and (epoch + 1) % validate_every == 0:
            print(f"epoch {epoch}: val loss {evaluate(model, val_loader, criterion):.4f}")
    if not validate_every:
        print(f"final val loss {evaluate(model, val_loader, criterion):.4f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--validate-every", type=int, default=0, help="0: only once, after training")
    parser.add_argument("--forget-train", action="store_true", help="never call model.train() again")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    ds = TensorDataset(torch.randn(128, 8), torch.randint(0, 2, (128,)))
    train_ds, val_ds = random_split(ds, [96, 32], generator=torch.Generator().manual_seed(0))
    train_loader = DataLoader(train_ds, batch_size=16, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=16)
    model = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    train(model, train_loader, val_loader, optimizer, nn.CrossEntropyLoss(), args.epochs, args.validate_every,
          args.forget_train)


if __name__ == "__main__":
    main()
