"""Issue 3, resume side: checkpoints loaded but state left unrestored, LR schedules that restart or jump."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import watchdog
from watchdog.core.format import fmt_number as fmt
from watchdog.checkpoint.resume import lr_at

from tests.ckpt_loops import X, Y, codes, loader, make, train_epoch, watch  # noqa: E402,F401


def full_checkpoint(tmp_path, epochs=3):
    """A complete checkpoint written by an unwatched run: model, optimizer, scheduler, epoch."""
    model, opt, sched = make()
    for _ in range(epochs):
        train_epoch(model, opt, loader())
        sched.step()
    path = tmp_path / "full.pt"
    torch.save({"epoch": epochs, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict()}, path)
    return path, sched.get_last_lr()[0]


# -- the seed's resume -------------------------------------------------------------------------------------
def load_checkpoint(model, path):
    checkpoint = torch.load(path)
    model.load_state_dict(checkpoint['model_state_dict'])
    return checkpoint['epoch']


def test_seed_resume_restarts_the_cosine_schedule(tmp_path):
    model, _, _ = make()
    torch.save({"epoch": 50, "model_state_dict": model.state_dict()}, tmp_path / "ckpt.pt")
    with watch(tmp_path) as run:
        model, opt, sched = make()  # fresh Adam + CosineAnnealingLR(T_max=100)
        start = load_checkpoint(model, tmp_path / "ckpt.pt")
        for epoch in range(start, start + 2):
            train_epoch(model, opt, loader())
            sched.step()
    assert codes(run) == ["resume/optimizer-state-absent", "resume/scheduler-restarted"]
    f = next(f for f in run.findings if f.code == "resume/scheduler-restarted")
    expected = 1e-3 * (1 + math.cos(math.pi * 50 / 100)) / 2
    assert f.severity == "error"
    assert "restarts from epoch 0 (lr 1e-3)" in f.message and "from epoch 50" in f.message
    assert f"the LR should be {fmt(expected)}" in f.message and fmt(expected) == "5e-4"
    assert f.evidence["expected_lrs"][0] == expected
    assert "sched.load_state_dict(checkpoint['scheduler'])" in f.fix
    absent = next(f for f in run.findings if f.code == "resume/optimizer-state-absent")
    assert absent.severity == "warning" and "epoch 50" in absent.message


def test_correct_resume_is_silent(tmp_path):
    path, lr = full_checkpoint(tmp_path)
    with watch(tmp_path) as run:
        model, opt, sched = make()
        ckpt = torch.load(path)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        assert opt.param_groups[0]["lr"] == lr
        for _ in range(2):
            train_epoch(model, opt, loader())
            sched.step()
        torch.save({"epoch": 5, "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict()}, tmp_path / "next.pt")
    assert codes(run) == []


def test_optimizer_never_restored(tmp_path):
    path, _ = full_checkpoint(tmp_path)
    with watch(tmp_path) as run:
        model, opt, sched = make()
        ckpt = torch.load(path)
        model.load_state_dict(ckpt["model"])
        sched.load_state_dict(ckpt["scheduler"])
        train_epoch(model, opt, loader())
        sched.step()
    assert "resume/optimizer-not-restored" in codes(run)
    f = next(f for f in run.findings if f.code == "resume/optimizer-not-restored")
    assert f.message.startswith("Adam state not restored: Adam moments restart from zero.")
    assert "4 parameter tensors" in f.message and "'optimizer'" in f.message
    assert f.fix.startswith("Call opt.load_state_dict(checkpoint['optimizer'])")
    # the scheduler was restored but the optimizer's LR was not: it trained at 1e-3, not at the saved LR
    assert codes(run) == ["resume/optimizer-not-restored"]
    assert "it also stepped at lr 1e-3 instead of the saved" in f.message


def test_scheduler_created_fresh_after_optimizer_restore(tmp_path):
    path, lr = full_checkpoint(tmp_path, epochs=6)
    with watch(tmp_path) as run:
        model, opt, _ = make()
        ckpt = torch.load(path)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)  # not restored
        train_epoch(model, opt, loader())
        sched.step()
    assert codes(run) == ["resume/scheduler-restarted"]
    f = run.findings[0]
    assert "from epoch 6" in f.message and f"the LR should be {fmt(lr)}" in f.message


def test_lr_changed_by_hand_after_restore_jumps(tmp_path):
    path, lr = full_checkpoint(tmp_path)
    with watch(tmp_path) as run:
        model, opt, sched = make()
        ckpt = torch.load(path)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        for group in opt.param_groups:
            group["lr"] = 1e-2
        train_epoch(model, opt, loader())
    assert codes(run) == ["resume/lr-jump"]
    assert f"stepped at lr 0.01 right after loading full.pt (scheduler), which was saved at lr {fmt(lr)}" in run.findings[0].message


def test_lightning_and_split_files_resume(tmp_path):
    model, opt, sched = make()
    train_epoch(model, opt, loader())
    sched.step()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    torch.save(opt.state_dict(), tmp_path / "optimizer.pt")
    torch.save(sched.state_dict(), tmp_path / "scheduler.pt")
    with watch(tmp_path) as run:
        model, opt, sched = make()
        model.load_state_dict(torch.load(tmp_path / "pytorch_model.bin"))
        opt.load_state_dict(torch.load(tmp_path / "optimizer.pt"))
        sched.load_state_dict(torch.load(tmp_path / "scheduler.pt"))
        train_epoch(model, opt, loader())
    assert codes(run) == []
    with watch(tmp_path, name="r2") as run:
        model, opt, sched = make()
        model.load_state_dict(torch.load(tmp_path / "pytorch_model.bin"))
        torch.load(tmp_path / "optimizer.pt")  # read but never given to the optimizer
        train_epoch(model, opt, loader())
    assert codes(run) == ["resume/optimizer-not-restored"]
    assert "opt.load_state_dict(torch.load('optimizer.pt'))" in run.findings[0].fix


def test_fresh_training_that_loads_pretrained_weights_is_silent(tmp_path):
    model, _, _ = make()
    torch.save(model.state_dict(), tmp_path / "pretrained.pt")
    with watch(tmp_path) as run:
        model, opt, sched = make()
        model.load_state_dict(torch.load(tmp_path / "pretrained.pt"))
        train_epoch(model, opt, loader())
        sched.step()
    assert codes(run) == []


def test_grad_scaler_not_restored(tmp_path):
    model, opt, _ = make()
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    torch.save({"epoch": 2, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict()}, tmp_path / "amp.pt")
    with watch(tmp_path) as run:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # no scheduler in this loop
        scaler = torch.amp.GradScaler("cpu")
        ckpt = torch.load(tmp_path / "amp.pt")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        for x, y in loader():
            opt.zero_grad()
            scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
            scaler.step(opt)
            scaler.update()
    assert codes(run) == ["resume/scaler-not-restored"]
    assert "scale 256" in run.findings[0].message


def test_lr_at_matches_the_real_schedule():
    model, opt, _ = make()
    for make_sched, epochs in (
        (lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10), 7),
        (lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5), 5),
        (lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 0.9 ** e), 4),
        (lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=20), 9),
    ):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        sched = make_sched(opt)
        predicted = lr_at(sched, epochs)
        for _ in range(epochs):
            opt.step()
            sched.step()
        assert predicted is not None
        assert math.isclose(predicted[0], sched.get_last_lr()[0], rel_tol=1e-9), type(sched).__name__


def test_loading_a_checkpoint_mid_training_for_evaluation_is_silent(tmp_path):
    path, _ = full_checkpoint(tmp_path)
    with watch(tmp_path) as run:
        model, opt, sched = make()
        for epoch in range(3):
            train_epoch(model, opt, loader())
            sched.step()
            reference = make()[0]
            reference.load_state_dict(torch.load(path)["model"])  # compare against an old run's weights
            with torch.no_grad():
                reference(X)
    assert codes(run) == []


def test_post_load_step_hook_is_removed_after_a_few_steps(tmp_path):
    from torch.optim import optimizer as optimizer_module

    from watchdog.checkpoint.probe import ARMED_STEPS

    path, _ = full_checkpoint(tmp_path, epochs=1)
    hooks = optimizer_module._global_optimizer_post_hooks
    with watch(tmp_path) as run:
        model, opt, sched = make()
        before = len(hooks)
        ckpt = torch.load(path)
        assert len(hooks) == before + 1  # armed by the load
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        while run.loop.steps < ARMED_STEPS + 4:
            train_epoch(model, opt, loader())
        assert len(hooks) == before  # steady-state training pays nothing
    assert codes(run) == []
