"""eval/missing-epochs, eval/only-at-end, eval/never: epochs (and step-based runs) without evaluation."""

from __future__ import annotations

import json

import torch
from torch import nn

import watchdog
from eval_loops import codes, eval_codes, evaluate, finding, make_model, setup, train_one_epoch


def watch(tmp_path, **options):
    return watchdog.watch(report_dir=tmp_path / "wd", summary=False, **options)


# -- the seed's loop: validation only after all epochs -------------------------------------------------
def seed_train(model, train_loader, val_loader, optimizer, criterion, num_epochs=6, seen=None):
    for epoch in range(num_epochs):
        model.train()
        for data, target in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(data), target)
            loss.backward()
            optimizer.step()
            if seen is not None and epoch == 1 and not seen:
                seen.extend(f.code for f in watchdog.current_run().findings)
    evaluate(model, val_loader, criterion)


def test_seed_loop_validation_only_at_end_is_an_error(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    seen_during_epoch_1: list[str] = []
    with watch(tmp_path) as run:
        seed_train(model, train_loader, val_loader, optimizer, criterion, seen=seen_during_epoch_1)
    assert seen_during_epoch_1 == ["eval/missing-epochs"]  # live: at the first step of epoch 1
    f = finding(run, "eval/missing-epochs")
    assert f.severity == "error"
    assert "Epochs 0–4 of 6 had no evaluation; the only evaluation ran after training" in f.message
    assert f.evidence["missing_epochs"] == [0, 1, 2, 3, 4]
    assert f.evidence["evaluated_epochs"] == [5]
    assert f.evidence["only_after_training"] is True
    assert codes(run) == ["eval/missing-epochs"]
    report = json.loads((tmp_path / "wd" / "report.json").read_text())
    assert [x["code"] for x in report["findings"]] == ["eval/missing-epochs"]
    assert report["findings"][0]["severity"] == "error"
    live = [json.loads(line) for line in (tmp_path / "wd" / "events.jsonl").read_text().splitlines()]
    first = next(e for e in live if e["kind"] == "finding")
    assert first["data"]["severity"] == "warning" and first["data"]["step"] == 7  # first step of epoch 1


def test_validation_every_epoch_is_clean(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(4):
            train_one_epoch(model, train_loader, optimizer, criterion)
            evaluate(model, val_loader, criterion)
    assert run.loop.epoch == 4
    assert run.findings == []


def test_validation_at_start_of_each_epoch_only_notes_the_unevaluated_final_weights(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(4):
            evaluate(model, val_loader, criterion)
            train_one_epoch(model, train_loader, optimizer, criterion)
    f = finding(run, "eval/missing-epochs")
    assert f.severity == "info"
    assert f.evidence["missing_epochs"] == [3]
    assert "final weights were never evaluated" in f.message


def test_every_other_epoch_is_clean_with_eval_every_2(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path, eval_every=2) as run:
        for epoch in range(6):
            train_one_epoch(model, train_loader, optimizer, criterion)
            if epoch % 2 == 1:
                evaluate(model, val_loader, criterion)
    assert run.findings == []


def test_every_other_epoch_is_flagged_with_the_default_cadence(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for epoch in range(6):
            train_one_epoch(model, train_loader, optimizer, criterion)
            if epoch % 2 == 1:
                evaluate(model, val_loader, criterion)
    f = finding(run, "eval/missing-epochs")
    assert f.severity == "warning"
    assert f.evidence["missing_epochs"] == [0, 2, 4]
    assert "Epochs 0, 2, 4 of 6 had no evaluation" in f.message


def test_every_third_epoch_is_flagged_with_eval_every_2(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path, eval_every=2) as run:
        for epoch in range(6):
            train_one_epoch(model, train_loader, optimizer, criterion)
            if epoch % 3 == 2:
                evaluate(model, val_loader, criterion)
    f = finding(run, "eval/missing-epochs")
    assert f.severity == "warning"
    assert f.evidence["missing_epochs"] == [0, 1, 3, 4]


def test_no_evaluation_at_all_is_a_warning(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(3):
            train_one_epoch(model, train_loader, optimizer, criterion)
    f = finding(run, "eval/missing-epochs")
    assert f.severity == "warning"
    assert f.evidence["no_evaluation"] is True
    assert "no evaluation ran at all" in f.message


def test_mid_epoch_validation_with_a_val_loader_counts_for_that_epoch(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(3):
            model.train()
            for i, (data, target) in enumerate(train_loader):
                optimizer.zero_grad()
                criterion(model(data), target).backward()
                optimizer.step()
                if i == 2:
                    evaluate(model, val_loader, criterion, restore=True)
    assert run.loop.epoch == 3
    assert run.findings == []


def test_a_frozen_teacher_under_no_grad_is_not_evaluation(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    teacher = make_model().eval()
    with watch(tmp_path) as run:
        for _ in range(3):
            model.train()
            for data, target in train_loader:
                with torch.no_grad():
                    soft = teacher(data).softmax(-1)
                optimizer.zero_grad()
                out = model(data)
                loss = criterion(out, target) + (out.log_softmax(-1) * -soft).sum(-1).mean()
                loss.backward()
                optimizer.step()
    f = finding(run, "eval/missing-epochs")
    assert f.evidence["missing_epochs"] == [0, 1, 2]


# -- loops without DataLoaders: explicit epoch marks ---------------------------------------------------
def tensor_loop(epochs, eval_each_epoch, tmp_path):
    torch.manual_seed(0)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    criterion = nn.CrossEntropyLoss()
    x, y = torch.randn(48, 8), torch.randint(0, 2, (48,))
    vx, vy = torch.randn(16, 8), torch.randint(0, 2, (16,))
    with watch(tmp_path) as run:
        for _ in range(epochs):
            model.train()
            for i in range(0, 48, 8):
                optimizer.zero_grad()
                criterion(model(x[i:i + 8]), y[i:i + 8]).backward()
                optimizer.step()
            if eval_each_epoch:
                model.eval()
                with torch.no_grad():
                    criterion(model(vx), vy)
            watchdog.mark_epoch()
    return run


def test_explicit_epoch_marks_with_evaluation_are_clean(tmp_path):
    run = tensor_loop(4, True, tmp_path)
    assert run.loop.epoch == 4 and run.loop.epoch_source == "mark"
    assert eval_codes(run) == []


def test_explicit_epoch_marks_without_evaluation_are_flagged(tmp_path):
    run = tensor_loop(4, False, tmp_path)
    f = finding(run, "eval/missing-epochs")
    assert f.evidence["missing_epochs"] == [0, 1, 2, 3]
    assert f.evidence["epoch_source"] == "mark"


def test_mark_epoch_outside_a_watch_is_a_no_op():
    watchdog.mark_epoch()


# -- step-based loops (nanoGPT): no epochs -----------------------------------------------------------
def nanogpt_loop(tmp_path, max_iters, eval_interval, *, eval_at_end=False, eval_mode=True):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Dropout(0.1), nn.Linear(16, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    data_x, data_y = torch.randn(256, 8), torch.randint(0, 2, (256,))

    def get_batch():
        ix = torch.randint(0, 256 - 4, (4,))
        return data_x[ix], data_y[ix]

    @torch.no_grad()
    def estimate_loss():
        if eval_mode:
            model.eval()
        losses = [nn.functional.cross_entropy(model(x), y) for x, y in (get_batch() for _ in range(3))]
        model.train()
        return sum(losses) / len(losses)

    with watch(tmp_path) as run:
        iter_num = 0
        x, y = get_batch()
        while True:
            if eval_interval and iter_num % eval_interval == 0:
                estimate_loss()
            loss = nn.functional.cross_entropy(model(x), y)
            x, y = get_batch()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            iter_num += 1
            if iter_num > max_iters:
                break
        if eval_at_end:
            estimate_loss()
    return run


def test_step_based_loop_with_periodic_evaluation_is_clean(tmp_path):
    run = nanogpt_loop(tmp_path, max_iters=1200, eval_interval=250)
    assert run.loop.epoch == 0 and run.loop.steps == 1201
    assert eval_codes(run) == []


def test_step_based_loop_with_a_large_eval_interval_is_clean(tmp_path):
    run = nanogpt_loop(tmp_path, max_iters=1200, eval_interval=1000)
    assert eval_codes(run) == []


def test_step_based_loop_evaluating_only_after_training_is_an_error(tmp_path):
    run = nanogpt_loop(tmp_path, max_iters=1200, eval_interval=0, eval_at_end=True)
    f = finding(run, "eval/only-at-end")
    assert f.severity == "error"
    assert f.evidence["steps"] == 1201
    assert eval_codes(run) == ["eval/only-at-end"]


def test_step_based_loop_evaluating_only_before_training_is_never(tmp_path):
    run = nanogpt_loop(tmp_path, max_iters=1200, eval_interval=5000)
    f = finding(run, "eval/never")
    assert f.severity == "warning"
    assert "never evaluated" in f.message
    assert eval_codes(run) == ["eval/never"]


def test_short_step_based_loop_is_not_judged(tmp_path):
    run = nanogpt_loop(tmp_path, max_iters=200, eval_interval=0)
    assert eval_codes(run) == []


def test_mark_epoch_after_a_training_loader_pass_does_not_count_the_epoch_twice(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(3):
            train_one_epoch(model, train_loader, optimizer, criterion)
            evaluate(model, val_loader, criterion)
            watchdog.mark_epoch()
    assert run.loop.epoch == 3 and run.loop.epoch_source == "mark"
    assert run.findings == []


def test_mid_epoch_validation_on_tensors_inside_the_training_pass_counts(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    vx, vy = torch.randn(16, 8), torch.randint(0, 2, (16,))
    with watch(tmp_path) as run:
        for _ in range(3):
            model.train()
            for i, (data, target) in enumerate(train_loader):
                optimizer.zero_grad()
                criterion(model(data), target).backward()
                optimizer.step()
                if i == 3:
                    model.eval()
                    with torch.no_grad():
                        criterion(model(vx), vy)
                    model.train()
    assert run.findings == []


def test_pseudo_labels_under_no_grad_in_train_mode_are_not_evaluation(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(3):
            model.train()
            for data, target in train_loader:
                with torch.no_grad():
                    pseudo = model(data).argmax(-1)
                optimizer.zero_grad()
                criterion(model(data), pseudo).backward()
                optimizer.step()
    assert finding(run, "eval/missing-epochs").evidence["missing_epochs"] == [0, 1, 2]


def test_a_run_that_crashes_is_not_blamed_for_its_unfinished_last_epoch(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    try:
        with watch(tmp_path) as run:
            for epoch in range(3):
                train_one_epoch(model, train_loader, optimizer, criterion)
                if epoch == 1:
                    raise RuntimeError("the user's own error")
                evaluate(model, val_loader, criterion)
    except RuntimeError as exc:
        assert str(exc) == "the user's own error"
    assert run.status == "exception"
    assert run.findings == []


def test_a_single_epoch_without_evaluation_is_not_judged(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        train_one_epoch(model, train_loader, optimizer, criterion)
    assert run.loop.epoch == 1 and run.findings == []


def test_two_epochs_without_evaluation_are(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watch(tmp_path) as run:
        for _ in range(2):
            train_one_epoch(model, train_loader, optimizer, criterion)
    assert finding(run, "eval/missing-epochs").evidence["missing_epochs"] == [0, 1]


def test_evaluation_of_a_model_that_was_garbage_collected_still_counts(tmp_path):
    def fit(model, train_loader, val_loader, epochs):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        for _ in range(epochs):
            train_one_epoch(model, train_loader, optimizer, nn.CrossEntropyLoss())
            model.eval()
            with torch.no_grad():
                for x, _ in val_loader:
                    model(x)

    _, train_loader, val_loader, _, _ = setup()
    watchdog.loader_role(val_loader, "ignore")  # only the forwards say "evaluation"
    with watch(tmp_path) as run:
        fit(make_model(), train_loader, val_loader, epochs=3)
        import gc
        gc.collect()
    assert run.findings == []


def test_one_long_epoch_evaluated_only_at_the_end_is_judged_by_steps(tmp_path):
    torch.manual_seed(0)
    model = make_model(batchnorm=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    criterion = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(0)
    ds = torch.utils.data.TensorDataset(torch.randn(1100, 8, generator=g), torch.randint(0, 2, (1100,), generator=g))
    train_loader = torch.utils.data.DataLoader(ds, batch_size=1)
    _, val_loader = setup()[1:3]
    with watch(tmp_path) as run:
        train_one_epoch(model, train_loader, optimizer, criterion)
        evaluate(model, val_loader, criterion)
    assert run.loop.epoch == 1 and run.loop.steps == 1100
    assert finding(run, "eval/only-at-end").severity == "error"
    assert eval_codes(run) == ["eval/only-at-end"]


# -- the evaluation points, kept incrementally ---------------------------------------------------------
class _Info:
    """A ModelInfo's fields the cadence check reads: its evaluation steps, capped as the probe caps them."""

    def __init__(self, name, cap):
        self.label, self.eval_steps, self.cap = name, [], cap

    def note(self, step):
        if not self.eval_steps or self.eval_steps[-1] != step:
            if len(self.eval_steps) < self.cap:
                self.eval_steps.append(step)
            else:
                self.eval_steps[-1] = step  # as core/training.py's _note_eval_step past EVAL_STEPS_CAP


class _Trained:
    def __init__(self):
        self.current = []

    def infos(self, alive=True):
        return list(self.current)


def test_incremental_evaluation_points_match_sorting_them_all_at_each_window():
    """EvalPoints answers what the check asked of a fresh sorted copy of every point at each window."""
    import bisect
    import random

    from watchdog.evaluation.cadence import EvalPoints
    from watchdog.evaluation.rule import EpochRanges
    from watchdog.core.format import fmt_ranges

    rng = random.Random(3)
    for trial in range(30):
        trained = _Trained()
        models = [_Info(f"m{i}", cap=rng.choice((3, 1000))) for i in range(3)]
        trained.current = [models[0]]
        points = EvalPoints(trained)
        passes, step, start, windows = [], 0, 0, 0
        ranges, epochs = EpochRanges(), []
        for _ in range(120):
            step += rng.choice((0, 1, 1, 2, 5))
            action = rng.random()
            if action < 0.2:
                passes.append((step, f"evaluation pass over loader{rng.randint(0, 1)}"))
                points.add_pass(step, passes[-1][1].rsplit(" ", 1)[1])
            elif action < 0.5:
                rng.choice(models).note(step)
            elif action < 0.55:  # the trained set changes (an optimizer found, a model dropped)
                trained.current = rng.sample(models, rng.randint(0, 3))
            elif action < 0.8 and step > start:  # a window closes
                points.refresh()
                reference = list(passes)
                for info in trained.current:
                    reference.extend((s, f"no_grad forwards of {info.label}") for s in info.eval_steps)
                reference.sort(key=lambda source: source[0])
                steps = [s for s, _ in reference]
                lo, hi = bisect.bisect_right(steps, start), bisect.bisect_right(steps, step)
                expected = {what for _, what in reference[lo:hi]} or None
                assert points.between(start, step) == expected
                during = [s for s in steps if s > 0]
                assert points.first_after(0) == (min(during) if during else None)
                assert points.first_distinct(4) == sorted(set(steps))[:4]
                assert sorted(points.sources()) == sorted(reference)  # by step; ties in any order
                assert [s for s, _ in points.sources()] == steps
                if expected is None:
                    epochs.append(windows)
                    ranges.add(windows)
                    assert ranges.text() == fmt_ranges(epochs)
                start, windows = step, windows + 1


# -- a DataLoader built inside the epoch loop: one training stream, one epoch per pass ------------------
def rebuilt_loader_loop(tmp_path, eval_each_epoch: bool, epochs: int = 4):
    from torch.utils.data import DataLoader

    model, train_loader, val_loader, optimizer, criterion = setup()
    train_data = train_loader.dataset
    with watch(tmp_path) as run:
        for _ in range(epochs):
            model.train()
            for data, target in DataLoader(train_data, batch_size=16, shuffle=True):
                optimizer.zero_grad()
                criterion(model(data), target).backward()
                optimizer.step()
            if eval_each_epoch:
                evaluate(model, DataLoader(val_loader.dataset, batch_size=16), criterion)
        if not eval_each_epoch:
            evaluate(model, val_loader, criterion)
    return run


def test_a_loader_rebuilt_each_epoch_evaluated_only_after_training_is_an_error(tmp_path):
    run = rebuilt_loader_loop(tmp_path, eval_each_epoch=False)
    missing = finding(run, "eval/missing-epochs")
    assert missing.severity == "error", missing.message
    # the evaluation after training counts for the last epoch, as in the seed loop
    assert missing.evidence["epochs"] == 4 and missing.evidence["missing_epochs"] == [0, 1, 2]


def test_a_loader_rebuilt_each_epoch_evaluated_each_epoch_is_clean(tmp_path):
    run = rebuilt_loader_loop(tmp_path, eval_each_epoch=True)
    assert eval_codes(run) == []
    windows = [json.loads(line)["data"] for line in (tmp_path / "wd" / "events.jsonl").read_text().splitlines()
               if json.loads(line)["kind"] == "eval_window"]
    assert [(w["epoch"], w["evaluated"]) for w in windows] == [(0, True), (1, True), (2, True), (3, True)]
