"""Issue 3, save side: completeness of what torch.save wrote, and the round trip, on real training loops."""

from __future__ import annotations

import io
import json
import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import watchdog
from watchdog.core.format import fmt_number as fmt
from watchdog.core.events import read_events

from tests.ckpt_loops import X, Y, codes, loader, make, train_epoch, watch  # noqa: E402,F401


def events(run, kind):
    return [e for e in read_events(run.report_dir / "events.jsonl") if e.kind == kind]


# -- the seed --------------------------------------------------------------------------------------------
def save_checkpoint(model, epoch, path):
    torch.save({'epoch': epoch, 'model_state_dict': model.state_dict()}, path)


def test_seed_save_checkpoint_loses_adam_and_cosine_state(tmp_path):
    model, opt, sched = make()
    data = loader()
    with watch(tmp_path) as run:
        for epoch in range(3):
            train_epoch(model, opt, data)
            sched.step()
            save_checkpoint(model, epoch, tmp_path / "ckpt.pt")
    assert codes(run) == ["checkpoint/missing-optimizer-state", "checkpoint/missing-scheduler-state"]
    opt_f = next(f for f in run.findings if f.code == "checkpoint/missing-optimizer-state")
    assert opt_f.severity == "error"
    assert "Adam moments for 4 parameter tensors (34 values) lost" in opt_f.message
    lr = sched.get_last_lr()[0]
    assert f"LR would restart at 1e-3 instead of {fmt(lr)}" in opt_f.message
    assert "(3 checkpoints so far)" in opt_f.message
    assert "opt.state_dict()" in opt_f.fix
    sch_f = next(f for f in run.findings if f.code == "checkpoint/missing-scheduler-state")
    assert "CosineAnnealingLR" in sch_f.message and "last_epoch 3" in sch_f.message
    assert "sched.state_dict()" in sch_f.fix
    assert sch_f.evidence["checkpoints_affected"] == 3


def test_full_checkpoint_is_clean_and_verified(tmp_path):
    model, opt, sched = make()
    data = loader()
    with watch(tmp_path) as run:
        for epoch in range(2):
            train_epoch(model, opt, data)
            sched.step()
            torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict()}, tmp_path / f"ckpt_{epoch}.pt")
    assert codes(run) == []
    verified = events(run, "checkpoint_verified")
    assert len(verified) == 1  # policy "first": once per layout
    assert verified[0].data["differences"] == 0 and verified[0].data["bytes"] > 0


def test_optimizer_saved_but_scheduler_not(tmp_path):
    model, opt, sched = make()
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        sched.step()
        torch.save({"step": 4, "model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "c.pt")
    assert codes(run) == ["checkpoint/missing-scheduler-state"]
    f = run.findings[0]
    assert f"LR 1e-3 instead of {fmt(sched.get_last_lr()[0])}" in f.message
    assert fmt(sched.get_last_lr()[0]) == "9.998e-4"


def test_lightning_style_dict(tmp_path):
    model, opt, sched = make()
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        sched.step()
        ckpt = {"epoch": 0, "global_step": 4, "pytorch-lightning_version": "2.4.0", "state_dict": model.state_dict(),
                "loops": {"fit_loop": {}}, "callbacks": {}, "optimizer_states": [opt.state_dict()],
                "lr_schedulers": [sched.state_dict()]}
        torch.save(ckpt, tmp_path / "epoch=0.ckpt")
        train_epoch(model, opt, loader())
        sched.step()
        torch.save({**ckpt, "lr_schedulers": []}, tmp_path / "epoch=1.ckpt")
    assert codes(run) == ["checkpoint/missing-scheduler-state"]
    assert run.findings[0].evidence["checkpoint"] == "epoch=1.ckpt"


def test_hf_trainer_style_directory(tmp_path):
    model, opt, sched = make()
    data = loader()

    def write(directory, with_scheduler):
        directory.mkdir()
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
        torch.save(opt.state_dict(), directory / "optimizer.pt")
        if with_scheduler:
            torch.save(sched.state_dict(), directory / "scheduler.pt")
        torch.save({"python": (3, (1, 2), None), "cpu": torch.zeros(4, dtype=torch.uint8)}, directory / "rng_state.pth")
        (directory / "trainer_state.json").write_text(json.dumps({"global_step": 4}))

    with watch(tmp_path) as run:
        train_epoch(model, opt, data)
        sched.step()
        write(tmp_path / "checkpoint-4", True)
        train_epoch(model, opt, data)
        sched.step()
        write(tmp_path / "checkpoint-8", False)
    assert codes(run) == ["checkpoint/missing-scheduler-state"]
    assert run.findings[0].evidence["directory"].endswith("checkpoint-8")


def test_save_into_bytesio_is_read_back_in_place(tmp_path):
    model, opt, sched = make()
    buf = io.BytesIO()
    buf.write(b"header")
    with watch(tmp_path, checkpoint_verify="every") as run:
        train_epoch(model, opt, loader())
        sched.step()
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "epoch": 0}, buf)
        end = buf.tell()
        train_epoch(model, opt, loader())  # a later checkpoint, in memory too
        torch.save({"model": model.state_dict(), "epoch": 1}, buf)
    assert buf.getvalue()[:6] == b"header"
    assert buf.tell() > end  # the user's position moved only by what torch.save wrote
    assert codes(run) == ["checkpoint/missing-optimizer-state", "checkpoint/missing-scheduler-state"]
    verified = events(run, "checkpoint_verified")
    assert [e.data["differences"] for e in verified] == [0, 0]
    assert verified[0].data["bytes"] == end - 6
    assert set(torch.load(io.BytesIO(buf.getvalue()[6:end]), weights_only=True)) == {"model", "optimizer", "scheduler", "epoch"}


def test_save_into_open_file_is_verified(tmp_path):
    model, opt, sched = make()
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        with open(tmp_path / "f.pt", "wb") as f:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}, f)
            assert f.tell() == os.path.getsize(tmp_path / "f.pt")
    assert codes(run) == []  # the scheduler has not stepped yet: nothing of it is lost
    assert [e.data["differences"] for e in events(run, "checkpoint_verified")] == [0]


def test_whole_module_pickle_is_flagged(tmp_path):
    model, opt, _ = make()
    with watch(tmp_path) as run:
        torch.save(model, tmp_path / "before.pt")  # no optimizer step yet: fine
        for x, y in zip(X.split(8), Y.split(8)):  # no DataLoader here: see the report (forward hook pickling)
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        torch.save(model, tmp_path / "model.pt")
    assert codes(run, "warning") == ["checkpoint/whole-module-pickle"]
    f = next(f for f in run.findings if f.code == "checkpoint/whole-module-pickle")
    assert "Sequential" in f.message and "model.pt" in f.message and "`opt` (Adam)" in f.message
    unverifiable = [f for f in run.findings if f.code == "checkpoint/unverifiable"]
    assert unverifiable and unverifiable[0].severity == "info"
    assert "Unsupported global" in unverifiable[0].message


def test_file_altered_on_disk_after_the_save(tmp_path):
    model, opt, sched = make()
    path = tmp_path / "ckpt.pt"
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        sched.step()
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "epoch": 0}, path)
        raw = bytearray(path.read_bytes())
        bias = model.state_dict()["2.bias"].numpy().tobytes()
        at = raw.find(bias)
        assert at > 0
        raw[at] ^= 0x01
        path.write_bytes(bytes(raw))
        loaded = torch.load(path, weights_only=True)
    assert not torch.equal(loaded["model"]["2.bias"], model.state_dict()["2.bias"])
    assert codes(run) == ["checkpoint/changed-on-disk"]
    f = run.findings[0]
    assert f.severity == "error" and "model.2.bias" in f.message and "when it is loaded" in f.message


def test_file_altered_on_disk_caught_at_run_end(tmp_path):
    model, opt, sched = make()
    path = tmp_path / "ckpt.pt"
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 0}, path)
        sd = dict(model.state_dict())
        sd["0.weight"] = sd["0.weight"] * 2
        torch.serialization.save({"model": sd, "optimizer": opt.state_dict(), "epoch": 0}, path)  # unwatched
    assert codes(run) == ["checkpoint/changed-on-disk"]
    assert run.findings[0].evidence["changed"] == ["model.0.weight"]


def test_roundtrip_policy_off_and_every(tmp_path):
    model, opt, _ = make()
    for policy, expected in (("off", 0), ("every", 3), ("first", 1)):
        with watch(tmp_path, name=policy, checkpoint_verify=policy) as run:
            train_epoch(model, opt, loader())
            for i in range(3):
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": i},
                           tmp_path / f"{policy}{i}.pt")
        assert len(events(run, "checkpoint_verified")) == expected
        assert codes(run) == []


def test_odd_objects_saved_without_a_crash(tmp_path):
    model, opt, _ = make()
    recursive: list = []
    recursive.append(recursive)
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        for i, obj in enumerate([torch.ones(3), [1, torch.zeros(2)], 5, "s", None, {"a": {"b": [1, 2]}},
                                 (torch.ones(1),), recursive, {"x": torch.ones(2), "y": torch.zeros(2)}]):
            torch.save(obj, tmp_path / f"odd{i}.pt")
        torch.save({"x": torch.arange(4)}, io.BytesIO())
        selfref = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}
        selfref["again"] = selfref
        torch.save(selfref, tmp_path / "selfref.pt")
        with pytest.raises(AttributeError):
            torch.save({"f": lambda: 0}, tmp_path / "lambda.pt")  # the user's own error, unchanged
    assert not [f for f in run.findings if f.code == "watchdog/internal-error"]
    assert codes(run, "warning") == []


def test_manual_sgd_without_optimizer_is_never_told(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    with watch(tmp_path) as run:
        for epoch in range(2):
            for x, y in loader():
                model.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                with torch.no_grad():
                    for p in model.parameters():
                        p -= 0.1 * p.grad
            torch.save({"epoch": epoch, "model": model.state_dict()}, tmp_path / "m.pt")
    assert codes(run) == []


def test_plain_sgd_at_constant_lr_loses_nothing(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        torch.save({"epoch": 0, "model": model.state_dict()}, tmp_path / "m.pt")
    assert codes(run) == []


def test_weights_only_exports_are_noted_once_at_run_end_as_info(tmp_path):
    model, opt, _ = make()
    with watch(tmp_path) as run:
        for epoch in range(2):
            train_epoch(model, opt, loader())
            torch.save(model.state_dict(), tmp_path / f"weights_{epoch}.pt")
    assert codes(run) == ["checkpoint/weights-only"]
    weights_only = next(f for f in run.findings if f.code.startswith("checkpoint/"))  # the loop also has eval/ findings
    assert weights_only.severity == "info"  # exports and best-model files are legitimate
    assert "2 save(s)" in weights_only.message
    with watch(tmp_path, name="r2") as run:
        train_epoch(model, opt, loader())
        torch.save(model.state_dict(), tmp_path / "best.pt")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}, tmp_path / "last.pt")
    assert codes(run) == []


def test_grad_scaler_state(tmp_path):
    model, opt, _ = make()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    with watch(tmp_path) as run:
        for x, y in loader():
            opt.zero_grad()
            scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
            scaler.step(opt)
            scaler.update()
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 0}, tmp_path / "a.pt")
        train_epoch(model, opt, loader())
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                    "epoch": 1}, tmp_path / "b.pt")
    assert codes(run) == ["checkpoint/missing-scaler-state"]
    f = next(f for f in run.findings if f.code.startswith("checkpoint/"))  # the loop also has eval/ findings
    assert f.severity == "warning" and "scale 1024" in f.message and f.evidence["checkpoint"] == "a.pt"


def test_behaviour_and_bytes_unchanged(tmp_path):
    model, opt, sched = make()
    train_epoch(model, opt, loader())
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    (tmp_path / "plain").mkdir()
    (tmp_path / "watched").mkdir()
    torch.save(ckpt, tmp_path / "plain" / "ckpt.pt")
    original_save, original_load = torch.save, torch.load
    patched = [(c, n, c.__dict__[n]) for c in (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau,
                                               torch.optim.lr_scheduler.LambdaLR, torch.amp.GradScaler, nn.Module,
                                               torch.optim.Optimizer)
               for n in ("step", "update", "load_state_dict") if n in c.__dict__]
    with watch(tmp_path):
        assert torch.save is not original_save
        assert torch.save(ckpt, tmp_path / "watched" / "ckpt.pt") is None
        back = torch.load(tmp_path / "watched" / "ckpt.pt")
    assert torch.save is original_save and torch.load is original_load
    assert (tmp_path / "plain" / "ckpt.pt").read_bytes() == (tmp_path / "watched" / "ckpt.pt").read_bytes()
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert all(c.__dict__[n] is f for c, n, f in patched)


def test_user_errors_pass_through_unchanged(tmp_path):
    model, opt, _ = make()
    with watch(tmp_path) as run:
        with pytest.raises(FileNotFoundError):
            torch.load(tmp_path / "missing.pt")
        with pytest.raises(ValueError):
            opt.load_state_dict({"state": {}, "param_groups": []})
        with pytest.raises(RuntimeError):
            model.load_state_dict({"nope": torch.ones(1)})
        with pytest.raises(RuntimeError, match="Parent directory"):
            torch.save({"model": model.state_dict()}, tmp_path / "no" / "such" / "dir.pt")
    assert codes(run) == []


def test_internal_failure_is_contained(tmp_path):
    class BrokenReadBack(io.BytesIO):
        def getvalue(self):  # watchdog's read-back uses it; torch.save does not
            raise RuntimeError("cannot read back")

    model, opt, _ = make()
    buf = BrokenReadBack()
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        assert torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 0}, buf) is None
        train_epoch(model, opt, loader())  # training goes on
    assert buf.tell() > 0
    (f,) = [f for f in run.findings if f.code == "watchdog/internal-error"]
    assert f.evidence["component"] == "check:checkpoint-integrity" and "cannot read back" in f.message



def test_a_failing_read_back_switches_off_only_the_integrity_check(tmp_path):
    class BrokenReadBack(io.BytesIO):
        def getvalue(self):  # watchdog's read-back uses it; torch.save does not
            raise RuntimeError("cannot read back")

    model, opt, _ = make()
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        torch.save({"model": model.state_dict(), "epoch": 0}, BrokenReadBack())  # no optimizer state
        train_epoch(model, opt, loader())
    (internal,) = [f for f in run.findings if f.code == "watchdog/internal-error"]
    assert internal.evidence["component"] == "check:checkpoint-integrity"
    # what the save left out is still judged: completeness is a check of its own
    (missing,) = [f for f in run.findings if f.code == "checkpoint/missing-optimizer-state"]
    assert missing.check == "checkpoint-completeness" and missing.evidence["checkpoint"] == "<bytesio>"

def test_object_that_does_not_pickle_what_it_holds_is_a_roundtrip_mismatch(tmp_path):
    import collections

    class TransientState(dict):
        """A checkpoint container whose pickling drops an entry (a `__reduce__` written for another use)."""

        def __reduce__(self):
            kept = [(k, v) for k, v in self.items() if k != "optimizer"]
            return (collections.OrderedDict, (), None, None, iter(kept))

    model, opt, sched = make()
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        torch.save(TransientState(model=model.state_dict(), optimizer=opt.state_dict(), epoch=0),
                   tmp_path / "ckpt.pt")
    f = next(f for f in run.findings if f.code == "checkpoint/roundtrip-mismatch")
    assert f.severity == "error" and "optimizer: saved key absent from the file" in f.message
    assert f.evidence["first"] == [{"path": "optimizer", "what": "missing", "detail": "saved key absent from the file"}]


def test_two_optimizers_each_matched_by_their_parameters(tmp_path):
    torch.manual_seed(0)
    gen, disc = nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4)
    opt_d = torch.optim.SGD(disc.parameters(), lr=1e-2, momentum=0.9)
    with watch(tmp_path) as run:
        for x, _ in loader():
            opt_d.zero_grad()
            disc(x).mean().backward()
            opt_d.step()
            opt_g.zero_grad()
            disc(gen(x)).mean().backward()
            opt_g.step()
        torch.save({"G": gen.state_dict(), "D": disc.state_dict(), "opt_G": opt_g.state_dict(),
                    "opt_D": opt_d.state_dict(), "epoch": 0}, tmp_path / "both.pt")
        for x, _ in loader():
            opt_d.zero_grad()
            disc(x).mean().backward()
            opt_d.step()
        torch.save({"G": gen.state_dict(), "D": disc.state_dict(), "opt_G": opt_g.state_dict(), "epoch": 1},
                   tmp_path / "only_g.pt")
    assert codes(run) == ["checkpoint/missing-optimizer-state"]
    f = run.findings[0]
    assert "`opt_d` (SGD)" in f.message and "momentum buffers for 4 parameter tensors" in f.message
    assert f.evidence["checkpoint"] == "only_g.pt"


def test_unverified_rewrite_noticed_at_load(tmp_path):
    model, opt, _ = make()
    path = tmp_path / "last.pt"
    with watch(tmp_path) as run:
        for epoch in range(2):  # the second save has the first one's layout: not read back (policy "first")
            train_epoch(model, opt, loader())
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}, path)
        torch.serialization.save({"model": {}, "epoch": 9}, path)  # unwatched writer
        torch.load(path)
    assert codes(run) == ["checkpoint/changed-on-disk"]
    f = next(f for f in run.findings if f.code.startswith("checkpoint/"))  # the loop also has eval/ findings
    assert f.severity == "warning" and "rewritten on disk after this run saved it" in f.message


def test_checkpoint_too_large_for_free_memory_is_not_read_back(tmp_path, monkeypatch):
    import watchdog.checkpoint.integrity as integrity_module

    monkeypatch.setattr(integrity_module, "MAX_READBACK_FRACTION", 1e-12)  # as if memory were nearly full
    model, opt, _ = make()
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 0}, tmp_path / "big.pt")
    assert codes(run) == ["checkpoint/unverifiable"]
    assert "not read back" in run.findings[0].message and run.findings[0].severity == "info"
    assert events(run, "checkpoint_verified") == []


def test_alternating_optimizers_all_count_and_a_replaced_one_does_not(tmp_path):
    """Which optimizers a checkpoint must hold: those that train now (issue 12). A GAN's two
    optimizers alternate and both count; an optimizer a later stage replaced does not."""
    import watchdog

    g, d = nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))  # 2 and 4 parameter tensors
    opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    with watchdog.watch(report_dir=tmp_path / "gan", summary=False, dashboard=False) as run:
        for _ in range(4):
            for opt, sign in ((opt_d, 1.0), (opt_g, -1.0)):
                opt.zero_grad()
                (sign * d(g(torch.randn(8, 4))).mean()).backward()
                opt.step()
        torch.save({"g": g.state_dict(), "d": d.state_dict(), "opt_g": opt_g.state_dict()}, tmp_path / "gan.pt")
    missing = [f for f in run.findings if f.code == "checkpoint/missing-optimizer-state"]
    assert len(missing) == 1 and "4 parameter tensors" in missing[0].message  # the discriminator's Adam

    model = nn.Linear(4, 1)
    stage1 = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)  # keeps state
    with watchdog.watch(report_dir=tmp_path / "stages", summary=False, dashboard=False) as run:
        for opt in (stage1, torch.optim.Adam(model.parameters())):  # stage 2 replaces stage 1's optimizer
            for _ in range(3):
                opt.zero_grad()
                model(torch.randn(8, 4)).mean().backward()
                opt.step()
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "stage2.pt")
    assert not [f for f in run.findings if f.code.startswith("checkpoint/missing")], [str(f) for f in run.findings]

@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps (Linux)")
def test_read_back_maps_the_file_instead_of_copying_it(tmp_path):
    from watchdog.checkpoint.roundtrip import compare, read_back

    saved = {"w": torch.arange(1 << 16, dtype=torch.float32), "step": 3}
    path = str(tmp_path / "mapped.pt")
    torch.save(saved, path)
    loaded = read_back(path)
    with open("/proc/self/maps") as maps:
        mapped = any(line.rstrip().endswith(os.path.realpath(path)) for line in maps)
    assert mapped, "the read-back should be a file mapping, not a second copy in anonymous memory"
    assert compare(saved, loaded) == ([], 0)
    del loaded


def test_legacy_format_and_bytes_are_still_read_back(tmp_path):
    from watchdog.checkpoint.roundtrip import Unverifiable, compare, read_back

    saved = {"w": torch.linspace(0, 1, 100), "epoch": 2}
    path = str(tmp_path / "legacy.pt")
    torch.save(saved, path, _use_new_zipfile_serialization=False)
    legacy = read_back(path)
    assert not isinstance(legacy, Unverifiable) and compare(saved, legacy) == ([], 0)
    buf = io.BytesIO()
    torch.save(saved, buf)
    from_bytes = read_back(buf.getvalue())
    assert not isinstance(from_bytes, Unverifiable) and compare(saved, from_bytes) == ([], 0)


def test_numpy_rng_state_in_a_checkpoint_is_verified_like_the_rest(tmp_path):
    # Accelerate's save_state (random_states_0.pkl) and many loops keep np.random.get_state(): NumPy
    # arrays of numbers load with weights_only=True once their reconstruction is allowed, as torch
    # documents it; so the file is read back and compared, not reported as unverifiable.
    import random

    import numpy as np
    model, opt, sched = make()
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "rng": {"numpy": np.random.get_state(), "python": random.getstate(),
                            "torch": torch.get_rng_state(), "scale": np.float64(0.5), "ids": np.arange(5)}},
                   tmp_path / "ckpt.pt")
    assert codes(run) == []
    (verified,) = events(run, "checkpoint_verified")
    assert verified.data["differences"] == 0


def test_the_programs_own_weights_only_allowlist_survives_a_watched_read_back(tmp_path):
    # A program that allowed NumPy arrays itself (to load its RNG state with weights_only=True) keeps
    # them allowed after watchdog read a checkpoint back with the same globals allowed for a moment.
    import numpy as np

    from watchdog.checkpoint.roundtrip import _numpy_globals
    mine = [np.ndarray, np.dtype]
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals(mine)
    try:
        model, opt, sched = make()
        with watch(tmp_path) as run:
            train_epoch(model, opt, loader())
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "ids": np.arange(5)}, tmp_path / "ckpt.pt")
            assert {np.ndarray, np.dtype} <= set(torch.serialization.get_safe_globals())
        assert codes(run) == [] and events(run, "checkpoint_verified")[0].data["differences"] == 0
        after = set(torch.serialization.get_safe_globals())
        assert set(mine) <= after  # the program's own entries, still there
        assert not (set(_numpy_globals()) - set(mine) - set(before)) & after  # watchdog's own, gone
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


def test_an_array_of_python_objects_stays_unverifiable_and_arrays_are_compared_by_bytes(tmp_path):
    import numpy as np

    from watchdog.checkpoint.roundtrip import compare
    model, opt, sched = make()
    with watch(tmp_path) as run:
        train_epoch(model, opt, loader())
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "names": np.array([{"a": 1}, None], dtype=object)}, tmp_path / "ckpt.pt")
    (f,) = [f for f in run.findings if f.code == "checkpoint/unverifiable"]
    assert "ckpt.pt could not be read back safely" in f.message
    diffs, total = compare({"a": np.array([0.0, 1.0, np.nan])}, {"a": np.array([0.0, 2.0, np.nan])})
    assert total == 1 and diffs[0].path == "a" and diffs[0].detail.startswith("1 of 3 elements differ; first at flat index 1")
    assert compare({"a": np.array([0.0, np.nan])}, {"a": np.array([0.0, np.nan])}) == ([], 0)
    assert compare({"a": np.arange(3)}, {"a": np.arange(3.0)})[0][0].what == "dtype"
