"""A fixed, realistic event stream (as written to events.jsonl) shared by the issue-6 tests."""
from __future__ import annotations

import json
import pathlib

T0 = 1_700_000_000.0

HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'


def sample_events(epochs: int = 6, eval_every: int = 2, hostile: bool = False) -> list[dict]:
    name = (lambda s: s + HOSTILE) if hostile else (lambda s: s)
    ev = [{"kind": "run_start", "t": T0, "data": {
        "run_id": name("r-1234"), "argv": ["train.py", name("--tag=")], "pid": 4242,
        "python": "3.11.7", "torch": "2.13.0", "watchdog": "0.1.0",
        "checks": ["overlap", "checkpoint", "resume", "eval-cadence", "eval-mode", "memory"]}}]
    t = T0
    steps = 0
    for e in range(epochs):
        ev.append({"kind": "loader_pass_start", "t": t + 0.5, "data": {"loader": name("train_loader"), "loader_id": 1,
                                                                    "epochs_completed": e, "step": steps}})
        steps += 50
        t += 10.0
        ev.append({"kind": "loader_pass_end", "t": t, "data": {
            "loader": name("train_loader"), "loader_id": 1, "role": "train", "batches": 50,
            "samples": 1600, "steps": 50, "complete": True, "epochs_completed": e}})
        ev.append({"kind": "epoch_end", "t": t, "data": {"epoch": e, "epochs_completed": e + 1, "steps": steps,
                                                         "source": "loader", "loader": name("train_loader")}})
        ev.append({"kind": "memory_sample", "t": t - 5.0, "data": {       # the background sampler
            "at": "sampler", "epoch": e, "steps": steps - 25, "rss": 999_000_000, "cuda": []}})
        ev.append({"kind": "memory_sample", "t": t, "data": {             # at epoch end, with the census
            "at": "epoch_end", "epoch": e + 1, "steps": steps, "rss": 200_000_000 + e * 21_000_000, "cuda": [],
            "census": {"count": 120 + e * 400, "bytes": 4_000_000 + e * 3_100_000, "graph_count": e * 200,
                       "graph_bytes": e * 1_000_000, "objects_scanned": 170_000, "duration_ms": 80.0},
            "census_diff": {"count": 400, "bytes": 3_100_000, "new_tensors": 400, "top": []}}})
        if (e + 1) % eval_every == 0:
            ev.append({"kind": "loader_pass_start", "t": t + 0.1, "data": {"loader": name("val_loader"), "loader_id": 2}})
            t += 2.0
            ev.append({"kind": "loader_pass_end", "t": t, "data": {
                "loader": name("val_loader"), "loader_id": 2, "role": "eval", "batches": 10,
                "samples": 320, "steps": 0, "complete": True, "epochs_completed": e + 1}})
        evaluated = (e + 1) % eval_every == 0
        ev.append({"kind": "eval_window", "t": t, "data": {
            "epoch": e, "first_step": steps - 49, "last_step": steps, "evaluated": evaluated,
            "by": ["evaluation pass over " + name("val_loader")] if evaluated else [], "eval_every": eval_every,
            "epoch_source": "loader"}})
        if e == 1:
            ev.append({"kind": "finding", "t": t, "data": {
                "code": "overlap/train-eval", "check": "overlap", "severity": "error",
                "message": name("120 of 320 samples served by val_loader are also served by train_loader"),
                "fix": "split the dataset once and build both loaders from the split",
                "evidence": {"train_loaders": [{"label": name("train_loader")}],
                             "eval_loader": {"label": name("val_loader")},
                             "overlap": 120, "eval_samples": 320, "train_samples": 1600},
                "where": None, "epoch": 2, "step": steps, "time": t, "key": "train_loader|val_loader"}})
            ckpt = name("/ckpt/epoch2.pt")
            ev.append({"kind": "checkpoint_saved", "t": t, "data": {   # as the checkpoint probe writes it
                "target": "path", "path": ckpt, "dir": "/ckpt", "bytes": 48_213, "steps": steps,
                "where": "train.py:40"}})
            ev.append({"kind": "checkpoint_verified", "t": t, "data": {
                "file": ckpt, "path": ckpt, "bytes": 48_213, "seconds": 0.004, "differences": 0}})
            ev.append({"kind": "finding", "t": t, "data": {
                "code": "checkpoint/optimizer-missing", "check": "checkpoint", "severity": "error",
                "message": "checkpoint " + ckpt + " holds no optimizer state: Adam moments lost",
                "fix": "save optimizer.state_dict()", "where": "train.py:40",
                "evidence": {"checkpoint": ckpt.rsplit("/", 1)[-1], "directory": "/ckpt", "saved_parts": [
                    {"top_type": "dict", "weights": [{"path": "model_state_dict", "tensors": 4}],
                     "optimizers": [], "schedulers": [], "scalers": [],
                     "counters": [{"path": "epoch", "key": "epoch", "value": 2}]}]},
                "epoch": 2, "step": steps, "time": t, "key": ckpt}})
        if e == 3:
            ev.append({"kind": "finding", "t": t, "data": {
                "code": "memory/growth", "check": "memory", "severity": "warning",
                "message": name("list `all_losses` in train() holds 1,200 new tensors (+3.1 MB/epoch)"),
                "fix": "append loss.item() instead of loss", "evidence": {"container": name("all_losses")},
                "where": {"file": name("train.py"), "line": 12, "function": "train"},
                "epoch": 4, "step": steps, "time": t, "key": "all_losses"}})
    ev.append({"kind": "run_end", "t": t + 1.0, "data": {
        "status": "ok", "epochs": epochs, "steps": steps, "epoch_source": "loader", "exception": None,
        "devices": {"cpu_count": 2}, "optimizers": [{"name": name("`opt` (Adam)"), "type": "Adam", "steps": steps}],
        "models": [{"name": name("`model` (Net)"), "type": "Net"}],
        "loaders": [{"id": "L1", "names": [name("train_loader")], "roles": ["train"], "passes": epochs,
                     "dataset": "TensorDataset", "dataset_size": 1600, "where": "train.py:9"}],
        "disabled": []}})
    return ev


def write_log(directory: pathlib.Path, events: list[dict], truncate_tail: bool = False) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "events.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for e in events:
            fh.write(json.dumps(e) + "\n")
        if truncate_tail:
            fh.write('{"kind": "memory_sample", "t": 1700000099.0, "data": {"epo')
    return path
