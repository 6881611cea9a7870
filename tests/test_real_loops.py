"""Precision on real, correct loops: a Lightning run and a nanoGPT-style run give no warnings or errors."""

from __future__ import annotations

import math
import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, random_split

import watchdog
from tests.loops import make_dataset


def problems(run):
    return [str(f) for f in run.findings if f.severity in ("warning", "error")]


def test_lightning_fit_with_validation_and_checkpoints_is_clean(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")

    class Classifier(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 2))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self(x), y))

        def configure_optimizers(self):
            opt = torch.optim.AdamW(self.parameters(), lr=1e-3)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)}

    ds = make_dataset(512)
    train_ds, val_ds = random_split(ds, [448, 64], generator=torch.Generator().manual_seed(0))
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path))
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False) as run:
        trainer.fit(Classifier(), DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=32))
    assert run.loop.steps == 3 * 14 and run.loop.epoch == 3
    assert problems(run) == []


def test_nanogpt_style_iteration_loop_is_clean(tmp_path):
    """No DataLoader, batches drawn at random, evaluation every N iterations, manual cosine LR."""
    torch.manual_seed(0)
    data = torch.randint(0, 32, (4096,))
    train_data, val_data = data[:3600], data[3600:]
    block, batch = 16, 8

    def get_batch(split):
        source = train_data if split == "train" else val_data
        ix = torch.randint(len(source) - block - 1, (batch,))
        x = torch.stack([source[i:i + block] for i in ix])
        y = torch.stack([source[i + 1:i + 1 + block] for i in ix])
        return x, y

    class TinyGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(32, 32)
            self.drop = nn.Dropout(0.1)
            self.head = nn.Linear(32, 32)

        def forward(self, idx, targets=None):
            logits = self.head(self.drop(self.emb(idx)))
            loss = nn.functional.cross_entropy(logits.view(-1, 32), targets.view(-1))
            return logits, loss

    model = TinyGPT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    max_iters, eval_interval, eval_iters, warmup = 120, 20, 4, 10

    def get_lr(it):
        if it < warmup:
            return 6e-4 * (it + 1) / warmup
        ratio = (it - warmup) / (max_iters - warmup)
        return 6e-5 + 0.5 * (1 + math.cos(math.pi * ratio)) * (6e-4 - 6e-5)

    @torch.no_grad()
    def estimate_loss():
        out = {}
        model.eval()
        for split in ("train", "val"):
            losses = torch.zeros(eval_iters)
            for k in range(eval_iters):
                _, loss = model(*get_batch(split))
                losses[k] = loss.item()
            out[split] = losses.mean()
        model.train()
        return out

    with watchdog.watch(report_dir=tmp_path / "wd", summary=False) as run:
        for iter_num in range(max_iters + 1):
            for group in optimizer.param_groups:
                group["lr"] = get_lr(iter_num)
            if iter_num % eval_interval == 0:
                losses = estimate_loss()
                if iter_num > 0:
                    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                "iter_num": iter_num, "best_val_loss": float(losses["val"])},
                               os.path.join(tmp_path, "ckpt.pt"))
            x, y = get_batch("train")
            _, loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
    assert run.loop.steps == max_iters + 1
    assert problems(run) == []
    assert {f.code for f in run.findings} <= {"overlap/unchecked"}
