"""DataLoaders rebuilt each epoch: one loader stream each, one set per stream kept (issue 14: memory
bounded by the loaders the user wrote, not by epochs), and the same findings as loaders built once."""

from __future__ import annotations

import gc
import json

import torch
from torch.utils.data import DataLoader, IterableDataset, Subset, random_split

import watchdog
from tests.loops import evaluate, make_dataset, make_model, train_epoch
from watchdog.overlap.check import OverlapCheck

EPOCHS = 5


def overlap_check(run) -> OverlapCheck:
    return next(c for c in run.checks if isinstance(c, OverlapCheck))


def kept_sets(run) -> int:
    """The served sets the overlap check keeps: the training union, per training and evaluation stream."""
    check = overlap_check(run)
    return len(check.train_union) + len(check.trained) + len(check.evaluated)


def leaky_split(n: int = 400, leaked: int = 17):
    """A base dataset, its training part and a validation part that holds ``leaked`` training samples."""
    ds = make_dataset(n)
    train_ds, val_ds = random_split(ds, [300, n - 300], generator=torch.Generator().manual_seed(0))
    return ds, train_ds, Subset(ds, list(val_ds.indices) + list(train_ds.indices[:leaked]))


def fit_loop(train_ds, val_ds, epochs: int, rebuilt: bool, after_epoch=None):
    """``train_loader``/``val_loader`` built once, or again at the top of every epoch."""
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    train_loader = DataLoader(train_ds, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=32)
    for _ in range(epochs):
        if rebuilt:
            train_loader = DataLoader(train_ds, batch_size=32, shuffle=True)
            val_loader = DataLoader(val_ds, batch_size=32)
        train_epoch(model, train_loader, optimizer)
        evaluate(model, val_loader)
        if after_epoch is not None:
            after_epoch()


def watched(report_dir, loop, *args, **kwargs):
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False) as run:
        loop(*args, **kwargs)
    return run


def train_eval(run):
    return [f for f in run.findings if f.code == "overlap/train-eval"]


COUNTS = ("overlap", "eval_samples", "train_samples", "fraction_of_eval", "examples", "same_dataset_object")


def test_loaders_rebuilt_each_epoch_give_the_finding_of_loaders_built_once(tmp_path):
    base, train_ds, val_ds = leaky_split()
    once = watched(tmp_path / "once", fit_loop, train_ds, val_ds, EPOCHS, rebuilt=False)
    rebuilt = watched(tmp_path / "rebuilt", fit_loop, train_ds, val_ds, EPOCHS, rebuilt=True)
    [expected], [found] = train_eval(once), train_eval(rebuilt)
    assert found.message == expected.message
    assert "`val_loader`" in found.message and "`train_loader`" in found.message
    assert " and `train_loader`" not in found.message  # the training loader named once, not once per epoch
    assert found.evidence["overlap"] == 17 and found.evidence["eval_samples"] == 117
    assert found.evidence["train_samples"] == 300
    assert {k: found.evidence[k] for k in COUNTS} == {k: expected.evidence[k] for k in COUNTS}
    assert found.evidence["base_dataset"] == expected.evidence["base_dataset"]
    assert (found.where, found.key) == (expected.where, expected.key)
    # the loaders as the user sees them: the same names and passes, and the objects each one took
    for side in ("eval_loader",):
        got, want = dict(found.evidence[side]), dict(expected.evidence[side])
        assert got.pop("objects") == EPOCHS and "objects" not in want
        assert {k: v for k, v in got.items() if k != "id"} == {k: v for k, v in want.items() if k != "id"}
    [got], [want] = found.evidence["train_loaders"], expected.evidence["train_loaders"]
    assert got["names"] == want["names"] and got["passes"] == want["passes"] == EPOCHS
    assert [f.code for f in rebuilt.findings] == [f.code for f in once.findings]


def test_loaders_rebuilt_over_one_dataset_object_say_so_at_every_update(tmp_path):
    """``val_loader`` over the training dataset itself, both rebuilt each epoch: the finding says the
    two wrap one dataset object, as for loaders built once, also once the old loaders are freed."""
    ds = make_dataset(200)
    once = watched(tmp_path / "once", fit_loop, ds, ds, EPOCHS, rebuilt=False)
    rebuilt = watched(tmp_path / "rebuilt", fit_loop, ds, ds, EPOCHS, rebuilt=True)
    [expected], [found] = train_eval(once), train_eval(rebuilt)
    assert found.message == expected.message
    assert found.message.endswith("Both loaders wrap the very same dataset object.")
    assert found.evidence["same_dataset_object"] is True and found.evidence["overlap"] == 200
    # the same words at each update (each epoch's comparison, once the last epoch's loaders are freed)
    events = [json.loads(line)["data"] for line in (tmp_path / "rebuilt" / "events.jsonl").read_text().splitlines()
              if json.loads(line)["kind"] == "finding"]
    assert {e["message"] for e in events if e["code"] == "overlap/train-eval"} == {expected.message}


def test_clean_loaders_rebuilt_each_epoch_give_no_finding(tmp_path):
    ds = make_dataset(400)
    train_ds, val_ds = random_split(ds, [300, 100], generator=torch.Generator().manual_seed(0))
    run = watched(tmp_path, fit_loop, train_ds, val_ds, EPOCHS, rebuilt=True)
    assert run.findings == [], [str(f) for f in run.findings]
    assert run.loop.epoch == EPOCHS


def test_the_sets_kept_do_not_grow_with_the_epochs(tmp_path):
    base, train_ds, val_ds = leaky_split()
    kept: list[int] = []
    with watchdog.watch(report_dir=tmp_path, summary=False, dashboard=False) as run:
        fit_loop(train_ds, val_ds, 8, rebuilt=True, after_epoch=lambda: kept.append(kept_sets(run)))
    # the training union, the train stream's set, the validation stream's set: after each epoch
    assert kept == [3] * 8
    check = overlap_check(run)
    assert len(check.loaders) == 2  # (train, its stream), (eval, its stream): 16 DataLoader objects
    assert len(run.loop.loaders) >= 2
    assert len(train_eval(run)) == 1


def test_train_and_val_rebuilt_at_one_place_are_two_streams(tmp_path):
    """One helper iterates both (``run_epoch(loader, train)``): the names, the datasets and the roles differ."""
    base, train_ds, val_ds = leaky_split()

    def run_epoch(model, loader, optimizer=None):
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            if optimizer is not None:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    def loop():
        model = make_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(EPOCHS):
            run_epoch(model, DataLoader(train_ds, batch_size=32, shuffle=True), optimizer)
            with torch.no_grad():
                run_epoch(model, DataLoader(val_ds, batch_size=32))

    run = watched(tmp_path, loop)
    [found] = train_eval(run)
    assert found.evidence["overlap"] == 17 and found.evidence["eval_samples"] == 117
    assert found.evidence["eval_loader"]["objects"] == EPOCHS
    assert kept_sets(run) == 3 and run.loop.epoch == EPOCHS


def test_val_and_test_rebuilt_with_their_datasets_at_one_place_stay_two_streams(tmp_path):
    """Both Subsets and both loaders built inline each epoch and passed to one ``evaluate()``: the
    test loader, built in the same evaluation as the validation one, is a sibling, not its successor."""
    ds = make_dataset(500)
    train_ds, val_ds, test_ds = random_split(ds, [300, 100, 100], generator=torch.Generator().manual_seed(0))
    val_idx = list(val_ds.indices) + list(train_ds.indices[:7])  # 7 leaked into validation
    test_idx = list(test_ds.indices) + list(train_ds.indices[100:130])  # 30 into the test set

    def loop():
        model = make_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(EPOCHS):
            train_epoch(model, DataLoader(Subset(ds, list(train_ds.indices)), batch_size=32), optimizer)
            gc.collect()
            evaluate(model, DataLoader(Subset(ds, val_idx), batch_size=32))
            gc.collect()
            evaluate(model, DataLoader(Subset(ds, test_idx), batch_size=32))
            gc.collect()

    run = watched(tmp_path, loop)
    found = sorted(train_eval(run), key=lambda f: f.evidence["overlap"])
    assert [(f.evidence["overlap"], f.evidence["eval_samples"]) for f in found] == [(7, 107), (30, 130)]
    assert all(f.evidence["eval_loader"]["objects"] == EPOCHS for f in found)
    assert all(f.evidence["train_samples"] == 300 for f in found)
    assert kept_sets(run) == 4  # the union, one training stream, two evaluation streams
    assert run.loop.epoch == EPOCHS


def test_one_loader_rebuilt_each_epoch_for_training_and_evaluation_is_one_finding(tmp_path):
    ds = make_dataset(200)

    def loop():
        model = make_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(EPOCHS):
            train_loader = DataLoader(ds, batch_size=32, shuffle=True)
            val_loader = train_loader  # the seed's bug, every epoch
            train_epoch(model, train_loader, optimizer)
            evaluate(model, val_loader)

    run = watched(tmp_path, loop)
    [finding] = [f for f in run.findings if f.code.startswith("overlap/")]
    assert finding.code == "overlap/same-loader"
    assert "`train_loader`" in finding.message and "`val_loader`" in finding.message
    assert finding.evidence["loader"]["objects"] == EPOCHS and finding.evidence["eval_samples_seen"] == 200


class Stream(IterableDataset):
    def __init__(self, n: int):
        self.n = n

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(self.n):
            yield torch.randn(8, generator=g), torch.randint(0, 2, (), generator=g)


def test_an_iterable_loader_rebuilt_each_epoch_is_one_unchecked_finding(tmp_path):
    def loop():
        model = make_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        data = Stream(64)
        for _ in range(EPOCHS):
            train_epoch(model, DataLoader(data, batch_size=16), optimizer)

    run = watched(tmp_path, loop)
    unchecked = [f for f in run.findings if f.code == "overlap/unchecked"]
    assert len(unchecked) == 1, [str(f) for f in unchecked]
    assert "IterableDataset" in unchecked[0].message or "Stream" in unchecked[0].message


def test_a_rank_exports_one_loader_entry_per_stream(tmp_path, monkeypatch):
    """Under torchrun each rank's served/index.json names the loaders that served each set: one entry
    per stream, so the file (rewritten at pass ends) does not grow with the epochs."""
    from watchdog.overlap.export import SERVED_FOLDER, read_served

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")  # rank 1 of 2, alone: it exports, and merges nothing
    base, train_ds, val_ds = leaky_split()
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        fit_loop(train_ds, val_ds, EPOCHS, rebuilt=True)
    export = read_served(1, run.report_dir)
    assert export is not None and (run.report_dir / SERVED_FOLDER).is_dir()
    [base_id] = export.bases
    for role, name in (("train", "train_loader"), ("eval", "val_loader")):
        [entry] = export.served(role)[base_id]["loaders"]
        assert entry["label"] == f"`{name}`" and entry["objects"] == EPOCHS and entry["passes"] == EPOCHS
    assert len(export.indices(export.served("eval")[base_id])) == 117
