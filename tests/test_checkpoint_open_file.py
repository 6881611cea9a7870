"""A save into an open file object the user goes on writing to (issue 9, item 9)."""

from __future__ import annotations

import io

import torch

import watchdog
from tests.loops import loader, make_dataset, make_model, train_epoch


def _save_then_write_more(path, obj):
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.write(b"trailer written by the user after torch.save")


def test_writing_more_after_torch_save_is_not_a_change_on_disk(report_dir, tmp_path):
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        for epoch in range(3):  # the first save is read back; later ones of the same layout are not
            train_epoch(model, loader(make_dataset(64)), optimizer)
            _save_then_write_more(tmp_path / f"ckpt{epoch}.pt", {"model": model.state_dict(),
                                                                 "optimizer": optimizer.state_dict()})
        for epoch in range(3):
            torch.load(tmp_path / f"ckpt{epoch}.pt", weights_only=True)
    assert [str(f) for f in run.findings if f.code.startswith("checkpoint/")] == []


def test_a_real_rewrite_of_a_file_object_save_is_still_found(report_dir, tmp_path):
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "ckpt.pt"
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        train_epoch(model, loader(make_dataset(64)), optimizer)
        _save_then_write_more(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict()})
        other = {"model": {k: v + 1 for k, v in model.state_dict().items()}, "optimizer": optimizer.state_dict()}
        buffer = io.BytesIO()
        torch.save(other, buffer)
        path.write_bytes(buffer.getvalue())  # someone else rewrites the file
        torch.load(path, weights_only=True)
    changed = [f for f in run.findings if f.code == "checkpoint/changed-on-disk"]
    assert len(changed) == 1 and changed[0].severity == "error", [str(f) for f in run.findings]
