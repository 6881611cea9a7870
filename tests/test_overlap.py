"""Overlap check: positive and negative cases on real DataLoaders (issue 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, IterableDataset, Sampler, Subset, random_split

import watchdog
from tests.loops import evaluate, fit, loader, make_dataset, make_model, train_epoch


def codes(run):
    return [f.code for f in run.findings]


def only(run, code):
    found = [f for f in run.findings if f.code == code]
    assert len(found) == 1, [str(f) for f in run.findings]
    return found[0]


def test_same_loader_for_training_and_validation(report_dir):
    ds = make_dataset(200)
    train_loader = loader(ds, shuffle=True)
    val_loader = train_loader  # the seed's bug
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        fit(make_model(), train_loader, val_loader, epochs=2)
    finding = only(run, "overlap/same-loader")
    assert finding.severity == "error"
    assert "`train_loader`" in finding.message and "`val_loader`" in finding.message
    assert finding.evidence["loader"]["roles"] == ["eval", "train"]
    assert "overlap/train-eval" not in codes(run)
    report = json.loads((report_dir / "report.json").read_text())
    assert [f["code"] for f in report["findings"]] == ["overlap/same-loader"]


def test_two_random_splits_with_different_generators_exact_count(report_dir):
    ds = make_dataset(2000)
    train_ds, _ = random_split(ds, [1600, 400], generator=torch.Generator().manual_seed(1))
    _, val_ds = random_split(ds, [1600, 400], generator=torch.Generator().manual_seed(2))
    expected = len(set(train_ds.indices) & set(val_ds.indices))
    assert 0 < expected < 400
    train_loader, val_loader = loader(train_ds, 64, shuffle=True), loader(val_ds, 64)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        fit(make_model(), train_loader, val_loader, epochs=2)
    finding = only(run, "overlap/train-eval")
    ev = finding.evidence
    assert ev["overlap"] == expected
    assert ev["eval_samples"] == 400 and ev["train_samples"] == 1600
    assert ev["base_dataset"] == {"type": "TensorDataset", "size": 2000, "names": ["ds"]}
    assert ev["examples"] == sorted(set(train_ds.indices) & set(val_ds.indices))[:5]
    assert f"{expected} of 400 validation samples ({100 * expected / 400:.1f}%)" in finding.message
    assert "`val_loader`" in finding.message and "`train_loader`" in finding.message
    assert finding.where and "evaluate()" in finding.where
    assert "generator" in finding.fix


def test_correct_split_has_no_findings(report_dir):
    ds = make_dataset(1000)
    train_ds, val_ds = random_split(ds, [800, 200], generator=torch.Generator().manual_seed(0))
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        fit(make_model(), loader(train_ds, shuffle=True), loader(val_ds), epochs=3)
    assert run.findings == []
    assert run.loop.epoch == 3 and run.loop.steps == 3 * 25
    report = json.loads((report_dir / "report.json").read_text())
    assert report["findings"] == [] and report["summary"]["epochs"] == 3


def test_nested_subsets_resolve_to_base_indices(report_dir):
    ds = make_dataset(1000)
    outer = Subset(ds, list(range(100, 900)))  # base 100..899
    train_ds = Subset(outer, list(range(0, 500)))  # base 100..599
    val_ds = Subset(Subset(outer, list(range(450, 800))), list(range(0, 350, 2)))  # base 550..899 step 2
    expected = len(set(range(100, 600)) & set(range(550, 900, 2)))
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        fit(make_model(), loader(train_ds, shuffle=True), loader(val_ds), epochs=1)
    ev = only(run, "overlap/train-eval").evidence
    assert ev["overlap"] == expected == 25
    assert ev["examples"] == [550, 552, 554, 556, 558]


def test_concat_dataset_overlap_is_per_base_dataset(report_dir):
    a, b = make_dataset(300, seed=1), make_dataset(200, seed=2)
    train_ds = ConcatDataset([Subset(a, range(0, 250)), b])
    val_ds = ConcatDataset([Subset(a, range(240, 300)), Subset(b, range(190, 200))])
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        fit(make_model(), loader(train_ds, shuffle=True), loader(val_ds), epochs=1)
    found = sorted((f.evidence["overlap"], f.evidence["base_dataset"]["names"][0]) for f in run.findings)
    assert found == [(10, "a"), (10, "b")]
    assert all(f.code == "overlap/train-eval" for f in run.findings)


@pytest.mark.parametrize("persistent", [False, True])
def test_worker_processes_record_the_same_indices(report_dir, persistent):
    ds = make_dataset(600)
    train_ds = Subset(ds, range(0, 500))
    val_ds = Subset(ds, range(450, 600))
    kwargs = dict(num_workers=2, persistent_workers=persistent, prefetch_factor=3)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        fit(make_model(), loader(train_ds, 16, shuffle=True, **kwargs), loader(val_ds, 16, **kwargs), epochs=2)
    ev = only(run, "overlap/train-eval").evidence
    assert (ev["overlap"], ev["eval_samples"], ev["train_samples"]) == (50, 150, 500)


def test_evaluation_cut_short_counts_only_batches_received(report_dir):
    ds = make_dataset(600)
    train_loader = loader(Subset(ds, range(0, 400)), shuffle=True)
    val_loader = loader(Subset(ds, range(380, 600)), 10, num_workers=2)  # prefetches ahead
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        train_epoch(model, train_loader, optimizer)
        with torch.no_grad():
            for i, (x, _) in enumerate(val_loader):
                model(x)
                if i == 2:
                    break
        train_epoch(model, train_loader, optimizer)
    ev = only(run, "overlap/train-eval").evidence
    assert (ev["overlap"], ev["eval_samples"]) == (20, 30)


def test_statistics_pass_over_training_data_is_not_evaluation(report_dir):
    ds = make_dataset(400)
    train_ds, val_ds = random_split(ds, [300, 100], generator=torch.Generator().manual_seed(0))
    train_loader = loader(train_ds, shuffle=True)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        mean = torch.stack([x.mean(0) for x, _ in train_loader]).mean(0)  # no model, no step: "unknown"
        fit(make_model(), train_loader, loader(val_ds), epochs=1)
    assert mean.shape == (8,)
    assert run.findings == []


def test_explicit_role_for_a_test_loader(report_dir):
    ds = make_dataset(300)
    train_loader = loader(Subset(ds, range(0, 200)), shuffle=True)
    test_loader = loader(Subset(ds, range(150, 300)))
    watchdog.loader_role(test_loader, "test")
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        fit(make_model(), train_loader, None, epochs=1)
        for _ in test_loader:  # no model call, no no_grad: only the explicit role says "eval"
            pass
    assert only(run, "overlap/train-eval").evidence["overlap"] == 50


def test_ignore_role_silences_a_loader(report_dir):
    ds = make_dataset(300)
    train_loader = loader(Subset(ds, range(0, 200)), shuffle=True)
    train_metrics_loader = loader(Subset(ds, range(0, 200)))
    watchdog.loader_role(train_metrics_loader, "ignore")
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        fit(make_model(), train_loader, train_metrics_loader, epochs=1)
    assert run.findings == []


def test_loader_role_rejects_bad_values():
    with pytest.raises(ValueError, match="role must be one of"):
        watchdog.loader_role(loader(make_dataset(10)), "validate-me")
    with pytest.raises(TypeError, match="expects a torch DataLoader"):
        watchdog.loader_role([1, 2, 3], "eval")


class Stream(IterableDataset):
    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(64):
            yield torch.randn(8, generator=g), torch.randint(0, 2, (), generator=g)


def test_iterable_dataset_gives_an_info_finding_not_a_crash(report_dir):
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        fit(make_model(), DataLoader(Stream(), batch_size=16), DataLoader(Stream(), batch_size=16), epochs=2)
    assert {f.code for f in run.findings} == {"overlap/unchecked"}
    assert all(f.severity == "info" and f.evidence["reason"] == "iterable-dataset" for f in run.findings)
    assert len(run.findings) == 2  # one per loader, not per pass


class KeyDataset(torch.utils.data.Dataset):
    def __init__(self):
        self.items = {f"k{i}": (torch.randn(8), 0) for i in range(64)}

    def __getitem__(self, key):
        return self.items[key]

    def __len__(self):
        return len(self.items)


class KeySampler(Sampler):
    def __init__(self, keys):
        self.keys = list(keys)

    def __iter__(self):
        return iter(self.keys)

    def __len__(self):
        return len(self.keys)


def test_non_integer_sampler_keys_give_an_info_finding(report_dir):
    ds = KeyDataset()
    train_loader = DataLoader(ds, batch_size=16, sampler=KeySampler(ds.items))
    val_loader = DataLoader(ds, batch_size=16, sampler=KeySampler(list(ds.items)[:16]))
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        fit(make_model(), train_loader, val_loader, epochs=1)
    assert {(f.code, f.evidence["reason"]) for f in run.findings} == {("overlap/unchecked", "non-integer-indices")}


def test_loop_without_dataloader_gives_one_info_finding(report_dir):
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        for _ in range(5):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    finding = only(run, "overlap/unchecked")
    assert finding.severity == "info" and finding.evidence == {"reason": "no-dataloader", "steps": 5}


def test_strict_stops_at_the_end_of_the_first_overlapping_eval_pass(report_dir):
    ds = make_dataset(400)
    train_loader = loader(Subset(ds, range(0, 300)), shuffle=True)
    val_loader = loader(Subset(ds, range(200, 400)))
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    eval_batches = []
    epochs_started = []
    with pytest.raises(watchdog.WatchdogStop) as stopped:
        with watchdog.watch(report_dir=report_dir, strict=True, summary=False) as run:
            for epoch in range(5):
                epochs_started.append(epoch)
                train_epoch(model, train_loader, optimizer)
                with torch.no_grad():
                    for x, _ in val_loader:
                        model(x)
                        eval_batches.append(len(x))
    assert stopped.value.finding.code == "overlap/train-eval"
    assert "watchdog stopped the run" in str(stopped.value) and "Fix:" in str(stopped.value)
    assert epochs_started == [0] and sum(eval_batches) == 200  # the whole first eval pass, nothing more
    assert run.status == "stopped"
    report = json.loads((report_dir / "report.json").read_text())
    assert report["run"]["status"] == "stopped" and report["findings"][0]["code"] == "overlap/train-eval"


def test_content_fingerprints_catch_duplicates_across_dataset_objects(report_dir):
    base = make_dataset(300)
    # A second dataset object holding copies of 40 of the training rows: no index ties them together.
    copies = torch.utils.data.TensorDataset(base.tensors[0][100:140].clone(), base.tensors[1][100:140].clone())
    fresh = make_dataset(60, seed=9)
    val_ds = ConcatDataset([copies, fresh])
    train_ds = Subset(base, range(0, 200))
    with watchdog.watch(report_dir=report_dir, fingerprint=True, summary=False) as run:
        fit(make_model(), loader(train_ds, shuffle=True), loader(val_ds), epochs=1)
    finding = only(run, "overlap/duplicate-content")
    assert finding.evidence["duplicates"] == 40 and finding.evidence["eval_samples"] == 100
    assert finding.evidence["examples"][0] == {"eval": ["copies", 0], "train": ["base", 100]}


def test_fingerprints_are_silent_without_duplicates(report_dir):
    ds = make_dataset(300)
    train_ds, val_ds = random_split(ds, [200, 100], generator=torch.Generator().manual_seed(0))
    with watchdog.watch(report_dir=report_dir, fingerprint=True, summary=False) as run:
        fit(make_model(), loader(train_ds, shuffle=True), loader(val_ds), epochs=1)
    assert run.findings == []


def test_index_sets_store_at_most_one_bit_per_sample():
    from watchdog.overlap.indexset import IndexSet

    s = IndexSet(1_000_000)
    s.add(np.arange(0, 1_000_000, 3))
    assert s.nbytes <= 1_000_000 // 8 + 1
    assert len(s) == 333_334


def test_names_and_places_come_from_user_code_not_from_tqdm(report_dir):
    tqdm = pytest.importorskip("tqdm").tqdm
    ds = make_dataset(300)
    train_loader = loader(Subset(ds, range(0, 200)), shuffle=True)
    holdout_loader = loader(Subset(ds, range(150, 300)))
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        for x, y in tqdm(train_loader, disable=True):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        with torch.no_grad():
            for x, _ in tqdm(holdout_loader, disable=True):
                model(x)
    finding = only(run, "overlap/train-eval")
    assert "`holdout_loader`" in finding.message and "`train_loader`" in finding.message
    assert finding.where.startswith("test_overlap.py:")


def test_a_loop_that_stops_at_len_loader_ends_its_pass_at_the_next_boundary(report_dir):
    """Lightning's fetcher counts len(loader) batches and never calls next() again."""
    ds = make_dataset(300)
    train_loader = loader(Subset(ds, range(0, 200)), 50, shuffle=True)
    val_loader = loader(Subset(ds, range(150, 300)), 50)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        run.bus.add_listener(lambda e: seen.append((e.kind, e.data.get("role"), e.data.get("steps"))))
        for epoch in range(2):
            batches = iter(train_loader)  # kept alive: no StopIteration, no garbage collection
            for _ in range(len(train_loader)):
                x, y = next(batches)
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
            evaluate(model, val_loader)
            del batches
    order = [(kind, role, steps) for kind, role, steps in seen if kind in ("loader_pass_end", "epoch_end")]
    assert order == [("loader_pass_end", "train", 4), ("epoch_end", None, 4), ("loader_pass_end", "eval", 0),
                     ("loader_pass_end", "train", 4), ("epoch_end", None, 8), ("loader_pass_end", "eval", 0)]
    assert only(run, "overlap/train-eval").evidence["overlap"] == 50
