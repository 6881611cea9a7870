"""eval/train-in-eval-mode, eval/eval-in-train-mode, eval/grad-enabled: train/eval mode mix-ups."""

from __future__ import annotations

import torch
from torch import nn

import watchdog
from eval_loops import codes, eval_codes, evaluate, finding, make_model, setup, train_one_epoch
from test_eval_cadence import nanogpt_loop
from watchdog.evaluation.common import mode_dependent_modules


def watch(tmp_path, **options):
    return watchdog.watch(report_dir=tmp_path / "wd", summary=False, **options)


# -- training in eval mode ---------------------------------------------------------------------------
def test_model_left_in_eval_mode_after_the_first_evaluation(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        model.train()
        for _ in range(3):
            train_one_epoch(model, train_loader, optimizer, criterion, set_train=False)  # no model.train()
            evaluate(model, val_loader, criterion)  # leaves the model in eval mode
    f = finding(run, "eval/train-in-eval-mode")
    assert f.severity == "error"
    assert f.evidence["first_epoch"] == 1 and f.evidence["first_step"] == 7  # first step of epoch 1
    paths = [m["path"] for m in f.evidence["modules_in_eval_mode"]]
    assert paths == ["1", "3"]
    assert "`model.1` (batch norm)" in f.message and "`model.3` (dropout)" in f.message
    assert "model.train()" in f.fix
    assert f.where and f.where.startswith("eval_loops.py")
    assert codes(run) == ["eval/train-in-eval-mode"]


def test_model_switched_back_to_train_mode_each_epoch_is_clean(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(3):
            train_one_epoch(model, train_loader, optimizer, criterion)
            evaluate(model, val_loader, criterion)
    assert run.findings == []


def test_deliberately_frozen_batch_norm_in_a_train_mode_model_is_clean(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(3):
            model.train()
            model[1].eval()  # frozen BN statistics, on purpose
            train_one_epoch(model, train_loader, optimizer, criterion, set_train=False)
            evaluate(model, val_loader, criterion)
    assert run.findings == []


def test_eval_mode_without_mode_dependent_modules_is_clean(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup(dropout=False, batchnorm=False)
    with watch(tmp_path) as run:
        for _ in range(3):
            train_one_epoch(model, train_loader, optimizer, criterion, set_train=False)
            evaluate(model, val_loader, criterion)
    assert run.findings == []


def test_step_based_loop_left_in_eval_mode_is_caught_by_step_alarms(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(4, 8), torch.randint(0, 2, (4,))
    with watch(tmp_path) as run:
        for step in range(300):
            if step == 100:
                model.eval()  # an estimate_loss() that forgot model.train()
                with torch.no_grad():
                    model(x)
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    f = finding(run, "eval/train-in-eval-mode")
    assert f.evidence["first_step"] == 128  # the next alarm after step 100
    assert f.evidence["last_step"] == 256
    assert "eval/train-in-eval-mode" in eval_codes(run)


# -- evaluation in train mode ----------------------------------------------------------------------------
def test_evaluation_in_train_mode_names_the_active_modules(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(2):
            train_one_epoch(model, train_loader, optimizer, criterion)
            evaluate(model, val_loader, criterion, eval_mode=False)  # forgot model.eval()
    f = finding(run, "eval/eval-in-train-mode")
    assert f.severity == "warning"
    assert f.evidence["passes"] == 2 and f.evidence["train_mode_forwards"] == 4 and f.evidence["forwards"] == 4
    assert "`model.1` (batch norm)" in f.message and "`model.3` (dropout)" in f.message
    assert "running statistics with evaluation data" in f.message
    assert codes(run) == ["eval/eval-in-train-mode"]


def test_evaluation_in_train_mode_without_dropout_or_batchnorm_is_clean(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup(dropout=False, batchnorm=False)
    with watch(tmp_path) as run:
        for _ in range(2):
            train_one_epoch(model, train_loader, optimizer, criterion)
            evaluate(model, val_loader, criterion, eval_mode=False)
    assert run.findings == []


class _FFLayer(nn.Linear):
    """pytorch/examples mnist_forward_forward's Layer: `train(x_pos, x_neg)` is its training routine
    under that name, not the mode switch (no dropout, no batch norm: both modes compute the same)."""

    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out)
        self.opt = torch.optim.Adam(self.parameters(), lr=0.03)

    def forward(self, x):
        return torch.relu(super().forward(x / (x.norm(2, 1, keepdim=True) + 1e-4)))

    def train(self, x_pos, x_neg):
        for _ in range(3):
            loss = torch.log1p(torch.exp(torch.cat([2 - self(x_pos).pow(2).mean(1),
                                                    self(x_neg).pow(2).mean(1) - 2]))).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return self(x_pos).detach(), self(x_neg).detach()


class _ModeSwitchLayer(nn.Linear):
    """A `train(mode)` override: the mode switch with something of its own."""

    def train(self, mode=True):
        return super().train(mode)


def _ff_run(tmp_path, layer_class):
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    train_loader = DataLoader(TensorDataset(torch.randn(64, 8, generator=g)), batch_size=64)
    test_loader = DataLoader(TensorDataset(torch.randn(32, 8, generator=g)), batch_size=16)
    layers = [layer_class(8, 16), layer_class(16, 16)]
    with watch(tmp_path) as run:
        (x,) = next(iter(train_loader))
        h_pos, h_neg = x, x.flip(0)
        for layer in layers:
            if isinstance(layer, _FFLayer):
                h_pos, h_neg = layer.train(h_pos, h_neg)
            else:
                loss = layer(h_pos).pow(2).mean() - layer(h_neg).pow(2).mean()
                loss.backward()
                h_pos, h_neg = layer(h_pos).detach(), layer(h_neg).detach()
        with torch.no_grad():
            for (x_te,) in test_loader:       # evaluated without eval(): the layers' flag stays True
                h = x_te
                for layer in layers:
                    h = layer(h)
    return run


def test_a_train_method_that_is_a_training_routine_is_not_a_mode_switch(tmp_path):
    # Field run (pytorch/examples mnist_forward_forward): two identical eval/eval-in-train-mode warnings
    # named "`self` (custom train())" for layers whose only mode-dependent trait was a method called train.
    assert mode_dependent_modules(_FFLayer(2, 2)) == []
    run = _ff_run(tmp_path, _FFLayer)
    assert [f for f in run.findings if f.code == "eval/eval-in-train-mode"] == []


def test_a_train_mode_override_is_still_a_mode_switch(tmp_path):
    assert mode_dependent_modules(_ModeSwitchLayer(2, 2)) == [("(root)", "custom train()")]
    run = _ff_run(tmp_path, _ModeSwitchLayer)
    assert [f.code for f in run.findings if f.code == "eval/eval-in-train-mode"] != []


def test_step_based_evaluation_in_train_mode(tmp_path):
    run = nanogpt_loop(tmp_path, max_iters=300, eval_interval=100, eval_mode=False)
    f = finding(run, "eval/eval-in-train-mode")
    assert "outside any DataLoader pass" in f.message
    assert "`model.2` (dropout)" in f.message
    assert eval_codes(run) == ["eval/eval-in-train-mode"]


def test_step_based_evaluation_in_eval_mode_is_clean(tmp_path):
    run = nanogpt_loop(tmp_path, max_iters=300, eval_interval=100)
    assert eval_codes(run) == []


# -- evaluation with grad enabled ------------------------------------------------------------------------
def test_evaluation_with_grad_enabled_is_info(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(2):
            train_one_epoch(model, train_loader, optimizer, criterion)
            evaluate(model, val_loader, criterion, no_grad=False)
    f = finding(run, "eval/grad-enabled")
    assert f.severity == "info"
    assert f.evidence["grad_forwards"] == 4 and f.evidence["passes"] == 2
    assert "`val_loader`" in f.message
    assert codes(run) == ["eval/grad-enabled"]


def test_evaluation_under_inference_mode_is_clean(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(2):
            train_one_epoch(model, train_loader, optimizer, criterion)
            model.eval()
            with torch.inference_mode():
                for data, target in val_loader:
                    criterion(model(data), target)
    assert run.findings == []


# -- helpers and invisibility ----------------------------------------------------------------------------
def test_mode_dependent_modules_rules():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def train(self, mode=True):
            return super().train(mode)

    root = nn.Sequential(nn.Linear(2, 2), nn.Dropout(), nn.BatchNorm1d(2), nn.InstanceNorm1d(2),
                         nn.InstanceNorm1d(2, track_running_stats=True), nn.MultiheadAttention(2, 1),
                         nn.MultiheadAttention(2, 1, dropout=0.1), nn.LSTM(2, 2, num_layers=2, dropout=0.1),
                         Custom(), nn.Dropout(0.0))
    root[2].eval()
    assert mode_dependent_modules(root) == [
        ("1", "dropout"), ("2", "batch norm"), ("4", "instance norm"), ("6", "attention dropout"),
        ("7", "RNN dropout"), ("8", "custom train()")]
    assert mode_dependent_modules(root, training=False) == [("2", "batch norm")]


def test_watched_training_computes_exactly_what_unwatched_training_does(tmp_path):
    def losses(watched):
        model, train_loader, val_loader, optimizer, criterion = setup()
        torch.manual_seed(1)
        out = []

        def loop():
            for _ in range(2):
                model.train()
                for data, target in train_loader:
                    optimizer.zero_grad()
                    loss = criterion(model(data), target)
                    loss.backward()
                    optimizer.step()
                    out.append(loss.item())
                out.append(evaluate(model, val_loader, criterion))
        if watched:
            with watch(tmp_path):
                loop()
        else:
            loop()
        return out, torch.rand(1).item()

    assert losses(True) == losses(False)


def test_step_alarms_are_removed_with_the_run(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        train_one_epoch(model, train_loader, optimizer, criterion)
    steps = run.loop.steps
    train_one_epoch(model, train_loader, optimizer, criterion)  # unwatched: nothing counts any more
    assert run.loop.steps == steps
    assert not model._forward_pre_hooks


def test_a_failing_eval_check_is_switched_off_and_the_loop_is_unaffected(tmp_path, monkeypatch):
    from watchdog.evaluation import mode as eval_mode

    def broken(self):
        raise RuntimeError("boom inside the check")

    monkeypatch.setattr(eval_mode.EvalModeCheck, "_sample_mode", broken)
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(3):
            train_one_epoch(model, train_loader, optimizer, criterion, set_train=False)
            evaluate(model, val_loader, criterion)
    assert run.loop.steps == 18 and run.status == "ok"
    f = finding(run, "watchdog/internal-error")
    assert f.evidence["component"] == "check:eval-mode" and "boom inside the check" in f.message
    assert codes(run) == ["watchdog/internal-error"]


def test_no_grad_targets_at_every_step_without_a_dataloader_are_not_evaluation(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(4, 8)
    with watch(tmp_path) as run:
        for _ in range(50):
            with torch.no_grad():
                pseudo = model(x).argmax(-1)  # pseudo-labels, model in train mode
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), pseudo).backward()
            optimizer.step()
    assert eval_codes(run) == []


def test_gan_discriminator_in_eval_mode_during_the_generator_step_is_clean(tmp_path):
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8))
    disc = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.3), nn.Linear(8, 1))
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
    real = torch.randn(8, 8)
    with watch(tmp_path) as run:
        for _ in range(40):
            disc.train()
            opt_d.zero_grad()
            fake = gen(torch.randn(8, 4)).detach()
            (disc(fake).mean() - disc(real).mean()).backward()
            opt_d.step()
            disc.eval()  # frozen dropout while the generator learns, on purpose
            opt_g.zero_grad()
            (-disc(gen(torch.randn(8, 4))).mean()).backward()
            opt_g.step()
    assert run.loop.steps == 80
    assert eval_codes(run) == []


def test_step_alarms_ring_once_each_in_order_with_the_stepping_optimizer(tmp_path):
    from watchdog.evaluation.mode import _next_alarm

    assert [_next_alarm(s) for s in (0, 1, 2, 3, 1023, 1024, 1500)] == [1, 2, 4, 4, 1024, 2048, 2048]
    model, train_loader, val_loader, optimizer, criterion = setup()
    rang = []
    with watch(tmp_path) as run:
        for step in (5, 3, 3, 9):
            run.loop.at_step(step, lambda step=step: rang.append((step, run.loop.steps, run.loop.stepping_optimizer is optimizer)))
        train_one_epoch(model, train_loader, optimizer, criterion)
        assert run.loop.stepping_optimizer is None
    assert rang == [(3, 3, True), (3, 3, True), (5, 5, True)]  # step 9 never came (6 steps)
