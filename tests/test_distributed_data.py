"""The cross-rank data checks (issue 11): a base dataset's identity across processes, each rank's
export of what it served, and the checks that read them: ``overlap/train-eval`` across ranks,
``distributed/unsharded-train-loader`` and ``distributed/sampler-epoch-unchanged``.

Three real ``torchrun`` jobs (2 ranks, gloo), each launched once per module: one script with every
bug (each rank's own unseeded split, a pretraining loader with no DistributedSampler, a shuffling
DistributedSampler without set_epoch), one correct script for every negative (a seeded split under
DistributedSampler with set_epoch, eval sharded with shuffle=False, each rank training on its own
shard file, an IterableDataset), and one with a held-out set that leaks training samples on every
rank (the same-rank overlap, reported once).
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, TensorDataset

import watchdog
from tests.conftest import validate_report_file
from tests.torchrun import DIST_INIT, launch
from watchdog.core.datasets import dataset_identity
from watchdog.distributed.merge import merge_directory
from watchdog.overlap.export import SERVED_FOLDER, read_served

# ---------------------------------------------------------------------------------------- the jobs
BUGGY = DIST_INIT + """
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split, DistributedSampler

g = torch.Generator().manual_seed(0)
ds = TensorDataset(torch.randn(128, 8, generator=g), torch.randint(0, 2, (128,), generator=g))
pre_ds = TensorDataset(torch.randn(64, 8, generator=g), torch.randint(0, 2, (64,), generator=g))
torch.manual_seed(1000 + RANK)                    # a different seed per rank (for augmentations)...
train_ds, val_ds = random_split(ds, [96, 32])     # ...so each rank draws its own split
model = nn.Linear(8, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)

def step(xb, yb):
    opt.zero_grad(); nn.functional.cross_entropy(model(xb), yb).backward(); opt.step()

train_sampler = DistributedSampler(train_ds, shuffle=True)
train_loader = DataLoader(train_ds, batch_size=16, sampler=train_sampler)
val_loader = DataLoader(val_ds, batch_size=16)
pretrain_loader = DataLoader(pre_ds, batch_size=16, shuffle=True)   # no DistributedSampler
for epoch in range(3):                            # and no train_sampler.set_epoch(epoch)
    model.train()
    if epoch == 0:
        for xb, yb in pretrain_loader:
            step(xb, yb)
    for xb, yb in train_loader:
        step(xb, yb)
    model.eval()
    with torch.no_grad():
        for xb, yb in val_loader:
            model(xb)
dist.destroy_process_group()
"""

CLEAN = DIST_INIT + """
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, IterableDataset, random_split, DistributedSampler

class Stream(IterableDataset):
    def __iter__(self):
        g = torch.Generator().manual_seed(7)
        return iter([torch.randn(8, generator=g) for _ in range(8)])

g = torch.Generator().manual_seed(0)
full = TensorDataset(torch.randn(131, 8, generator=g), torch.randint(0, 2, (131,), generator=g))
ft_ds = TensorDataset(torch.randn(40, 8, generator=g), torch.randint(0, 2, (40,), generator=g))
torch.manual_seed(1000 + RANK)
train_ds, val_ds = random_split(full, [97, 34], generator=torch.Generator().manual_seed(0))
model = nn.Linear(8, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)

def step(xb, yb):
    opt.zero_grad(); nn.functional.cross_entropy(model(xb), yb).backward(); opt.step()

train_sampler = DistributedSampler(train_ds, shuffle=True)    # drop_last=False: 97 samples, one padded
train_loader = DataLoader(train_ds, batch_size=16, sampler=train_sampler)
val_loader = DataLoader(val_ds, batch_size=16, sampler=DistributedSampler(val_ds, shuffle=False))
stream_loader = DataLoader(Stream(), batch_size=4)
for epoch in range(3):
    train_sampler.set_epoch(epoch)
    model.train()
    for xb, yb in train_loader:
        step(xb, yb)
    model.eval()
    with torch.no_grad():
        for xb, yb in val_loader:
            model(xb)
        for xb in stream_loader:
            model(xb)

def train_on_own_shard():
    ds = TensorDataset(*torch.load(f"shard{RANK}.pt"))        # each rank its own file: already sharded
    for xb, yb in DataLoader(ds, batch_size=8, shuffle=True):
        step(xb, yb)

def finetune():
    loader = DataLoader(ft_ds, batch_size=8, sampler=DistributedSampler(ft_ds, shuffle=False))
    for epoch in range(2):                         # shuffle=False: the epoch changes nothing
        for xb, yb in loader:
            step(xb, yb)

model.train()
train_on_own_shard()
finetune()
dist.destroy_process_group()
"""

LEAK = DIST_INIT + """
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset, random_split, DistributedSampler

g = torch.Generator().manual_seed(0)
ds = TensorDataset(torch.randn(128, 8, generator=g), torch.randint(0, 2, (128,), generator=g))
train_ds, val_ds = random_split(ds, [96, 32], generator=torch.Generator().manual_seed(0))
leaky_val = Subset(ds, list(val_ds.indices) + list(train_ds.indices[:10]))   # 10 training samples held out
model = nn.Linear(8, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
train_sampler = DistributedSampler(train_ds, shuffle=True)
train_loader = DataLoader(train_ds, batch_size=16, sampler=train_sampler)
val_loader = DataLoader(leaky_val, batch_size=16)
for epoch in range(2):
    train_sampler.set_epoch(epoch)
    model.train()
    for xb, yb in train_loader:
        opt.zero_grad(); nn.functional.cross_entropy(model(xb), yb).backward(); opt.step()
    model.eval()
    with torch.no_grad():
        for xb, yb in val_loader:
            model(xb)
dist.destroy_process_group()
"""


def _job(tmp_path_factory, name, script, before=None):
    tmp = tmp_path_factory.mktemp(name)
    if before is not None:
        before(tmp)
    job = launch(tmp, script, options=("--no-dashboard",))
    assert job.proc.returncode == 0, job.output[-3000:]
    records, merged = merge_directory(job.report_dir)
    assert len(records) == 2 and all(r.finished for r in records), job.output[-3000:]
    assert merged.failed_checks == {}
    return job, records, merged


DATA_CODES = ("overlap/", "distributed/unsharded-train-loader", "distributed/sampler-epoch-unchanged")


@pytest.mark.parametrize("name", ["buggy", "clean", "leak"])
def test_the_merged_report_json_holds_the_data_findings(name, request):
    """DIR/report.json, written by the last rank to finish, holds what merge_directory finds."""
    job, _, merged = request.getfixturevalue(name)
    path = job.report_dir / "report.json"
    validate_report_file(path)
    report = json.loads(path.read_text(encoding="utf-8"))

    def shown(findings):
        return sorted((f["code"], tuple(f.get("ranks") or ()), f["severity"], f["message"]) for f in findings
                      if f["code"].startswith(DATA_CODES))

    assert shown(report["findings"]) == shown(merged.findings)
    codes = sorted(f["code"] for f in report["findings"] if f["severity"] != "info")
    assert codes == {"buggy": ["distributed/sampler-epoch-unchanged", "distributed/unsharded-train-loader",
                               "overlap/train-eval"],
                     "clean": [], "leak": ["overlap/train-eval"]}[name], [f["message"] for f in report["findings"]]


def _write_shards(tmp):
    for rank in range(2):  # the same shapes, a different content per rank
        g = torch.Generator().manual_seed(100 + rank)
        torch.save((torch.randn(48, 8, generator=g), torch.randint(0, 2, (48,), generator=g)), tmp / f"shard{rank}.pt")


@pytest.fixture(scope="module")
def buggy(tmp_path_factory):
    return _job(tmp_path_factory, "buggy", BUGGY)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return _job(tmp_path_factory, "clean", CLEAN, before=_write_shards)


@pytest.fixture(scope="module")
def leak(tmp_path_factory):
    return _job(tmp_path_factory, "leak", LEAK)


def _codes(merged, code):
    return [f for f in merged.findings if f["code"] == code]


def _rank_codes(records, code):
    return {r.rank: [f for f in r.findings() if f["code"] == code] for r in records}


# ---------------------------------------------------------------------- overlap/train-eval across ranks
def test_each_rank_s_own_unseeded_split_is_an_overlap_across_ranks(buggy):
    _, records, merged = buggy
    assert all(found == [] for found in _rank_codes(records, "overlap/train-eval").values())  # no rank alone sees it
    [finding] = _codes(merged, "overlap/train-eval")
    ev = finding["evidence"]
    assert finding["severity"] == "error" and finding["ranks"] == [0, 1]
    assert ev["eval_ranks"] == [0, 1] and ev["train_ranks"] == [0, 1] and ev["same_rank_overlap"] == 0
    assert ev["overlap"] == sum(ev["by_eval_rank"].values()) > 0
    assert ev["base_dataset"]["names"] == ["ds"] and ev["base_dataset"]["size"] == 128
    # the one-process evidence's shape, each loader with its ranks (what the overlap view labels rows with)
    assert [t["label"] for t in ev["train_loaders"]] == ["`train_loader` on ranks 0, 1"]
    assert ev["eval_loader"]["label"] == "`val_loader` on ranks 0, 1" and ev["eval_loader"]["ranks"] == [0, 1]
    message = finding["message"]
    assert "served by `val_loader` on ranks 0, 1 were also served by the training loader `train_loader` on ranks 0, 1" \
        in message
    assert "the ranks split the data differently" in message and "random_split" in finding["fix"]
    assert "generator=torch.Generator().manual_seed(0)" in finding["fix"]


def test_a_seeded_split_under_distributed_sampler_overlaps_nowhere(clean):
    _, _, merged = clean
    assert _codes(merged, "overlap/train-eval") == []
    assert [f for f in merged.findings if f["severity"] != "info"] == [], [f["message"] for f in merged.findings]


def test_a_same_rank_overlap_is_reported_once_with_the_whole_count(leak):
    _, records, merged = leak
    per_rank = _rank_codes(records, "overlap/train-eval")
    assert all(len(found) == 1 for found in per_rank.values())  # each rank saw the leak in its own shard
    own_counts = sorted(found[0]["evidence"]["overlap"] for found in per_rank.values())
    [finding] = _codes(merged, "overlap/train-eval")  # the ranks' own findings are superseded
    ev = finding["evidence"]
    assert ev["overlap"] == 10 and ev["eval_samples"] == 42 and sum(own_counts) == ev["same_rank_overlap"] < 20
    assert finding["ranks"] == [0, 1] and "split the data differently" not in finding["message"]


def test_a_rank_without_an_export_keeps_its_own_overlap_findings(leak, tmp_path):
    job, _, _ = leak
    copy = tmp_path / "wd"
    shutil.copytree(job.report_dir, copy)
    shutil.rmtree(copy / "rank1" / SERVED_FOLDER)
    _, merged = merge_directory(copy)
    found = _codes(merged, "overlap/train-eval")
    passed = [f for f in found if f["ranks"] == [1]]
    assert len(found) == 2 and len(passed) == 1 and passed[0]["message"].startswith("rank 1: Validation overlaps")
    across = next(f for f in found if f is not passed[0])
    assert across["evidence"]["eval_ranks"] == [0]  # rank 0 alone, from its export


# ---------------------------------------------------------------------- distributed/unsharded-train-loader
def test_a_training_loader_without_distributed_sampler_wastes_the_ranks(buggy):
    _, _, merged = buggy
    [finding] = _codes(merged, "distributed/unsharded-train-loader")
    ev = finding["evidence"]
    assert finding["severity"] == "error" and finding["ranks"] == [0, 1]
    assert ev["wasted_factor"] == 2.0 and ev["samples_per_rank"] == {"0": 64, "1": 64} and ev["distinct_samples"] == 64
    assert ev["samplers"] == ["RandomSampler"] and ev["base_dataset"]["names"] == ["pre_ds"]
    assert "`pretrain_loader` served 64 samples on each of ranks 0, 1" in finding["message"]
    assert "2.0x the work" in finding["message"] and finding["message"].startswith("Every rank trains on the same samples")
    assert "DistributedSampler" in finding["fix"] and "set_epoch(epoch)" in finding["fix"]


def test_distributed_sampler_padding_and_per_rank_shard_files_are_not_unsharded(clean):
    job, records, merged = clean
    assert _codes(merged, "distributed/unsharded-train-loader") == []
    exports = [read_served(r.rank, r.folder) for r in records]
    # the shard files are one TensorDataset `ds` of 48 samples on each rank, never tied across ranks
    shard_ids = [{b for b, base in e.bases.items() if base["names"] == ["ds"]} for e in exports]
    assert all(len(ids) == 1 for ids in shard_ids) and shard_ids[0] != shard_ids[1]
    # the seeded split's base is one dataset on both ranks: the first passes' shards (49 + 49 of 97) padded once
    [full] = {b for b, base in exports[0].bases.items() if base["names"] == ["full"]}
    firsts = [e.indices(e.first_train[full]) for e in exports]
    assert [len(s) for s in firsts] == [49, 49] and firsts[0].intersection_count(firsts[1]) == 1


# ---------------------------------------------------------------------- distributed/sampler-epoch-unchanged
def test_a_shuffling_distributed_sampler_without_set_epoch_is_named_once_for_both_ranks(buggy):
    _, records, merged = buggy
    assert all(len(found) == 1 for found in _rank_codes(records, "distributed/sampler-epoch-unchanged").values())
    [finding] = _codes(merged, "distributed/sampler-epoch-unchanged")
    assert finding["severity"] == "warning" and finding["ranks"] == [0, 1]
    assert finding["message"].startswith("ranks 0, 1: `train_sampler` (DistributedSampler, shuffle=True)")
    assert "its epoch stayed 0 over all 3 training passes of `train_loader`" in finding["message"]
    assert "`train_sampler.set_epoch(epoch)`" in finding["fix"]
    assert finding["evidence"]["epochs"] == [0, 0, 0]


def test_set_epoch_and_an_unshuffled_sampler_are_fine(clean):
    _, records, merged = clean
    assert _codes(merged, "distributed/sampler-epoch-unchanged") == []
    passes = [e.data for e in records[0].of_kind("loader_pass_end") if e.data.get("sampler")]
    train = [p["sampler"] for p in passes if p["loader"] == "`train_loader`"]
    assert [s["epoch"] for s in train] == [0, 1, 2] and train[0]["names"] == ["train_sampler"]
    assert {p["sampler"]["shuffle"] for p in passes if p["role"] == "train" and p["loader"] != "`train_loader`"} == {False}


# ---------------------------------------------------------------------- an IterableDataset on every rank
def test_an_iterable_dataset_is_unchecked_once_for_both_ranks(clean):
    _, records, merged = clean
    assert all(len(found) == 1 for found in _rank_codes(records, "overlap/unchecked").values())
    [finding] = _codes(merged, "overlap/unchecked")
    assert finding["severity"] == "info" and finding["ranks"] == [0, 1]
    assert finding["message"].startswith("ranks 0, 1: Train/eval overlap was not checked for `stream_loader`")


# ---------------------------------------------------------------------- the identity, on one process
def test_the_same_data_loaded_twice_is_one_identity(tmp_path):
    g = torch.Generator().manual_seed(0)
    torch.save((torch.randn(500, 3, 8, 8, generator=g), torch.randint(0, 10, (500,), generator=g)), tmp_path / "d.pt")
    a, b = (TensorDataset(*torch.load(tmp_path / "d.pt")) for _ in range(2))
    assert a is not b and dataset_identity(a) == dataset_identity(b)
    assert dataset_identity(a).content and dataset_identity(a).size == 500


def test_shards_of_one_shape_under_one_name_are_different_identities(tmp_path):
    _write_shards(tmp_path)
    identities = [dataset_identity(TensorDataset(*torch.load(tmp_path / f"shard{rank}.pt"))) for rank in range(2)]
    assert identities[0].type == identities[1].type and identities[0].size == identities[1].size
    assert identities[0].key != identities[1].key
    # the same images with zero borders and other labels; files under another root: not the same data
    images = torch.zeros(100, 1, 28, 28)
    images[:, :, 4:24, 4:24] = torch.rand(100, 1, 20, 20, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 10, (100,), generator=torch.Generator().manual_seed(2))
    assert dataset_identity(TensorDataset(images, labels)) != dataset_identity(TensorDataset(images, labels.roll(1)))
    assert dataset_identity(Files("/data/shard0", 100)) != dataset_identity(Files("/data/shard1", 100))
    assert dataset_identity(Files("/data/shard0", 100)) == dataset_identity(Files("/data/shard0", 100))


class Files(Dataset):
    """A dataset of files under ``root``, whose ``__getitem__`` draws from the RNG (an augmentation)."""

    def __init__(self, root, n):
        self.root = root
        self.files = [f"{root}/{i:05d}.png" for i in range(n)]
        self.transform = nn.Identity()
        self.cache = {}

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        raise AssertionError("the identity must not read a sample")


def test_the_identity_reads_no_sample_and_keeps_the_rng_streams():
    odd = TensorDataset(torch.randn(64, 16).t().contiguous().t(), torch.randn(64, 2).to(torch.bfloat16),
                        torch.zeros(64, dtype=torch.bool), torch.tensor(3.0).expand(64))
    torch.manual_seed(3)
    np.random.seed(3)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    for dataset in (Files("/data", 10), odd, TensorDataset(torch.empty(0, 3))):
        assert dataset_identity(dataset) == dataset_identity(dataset)  # deterministic
    assert torch.equal(torch.get_rng_state(), torch_state) and np.array_equal(np.random.get_state()[1], numpy_state)


class Unreadable(list):
    def __len__(self):
        raise RuntimeError("a lazy list that cannot be read yet")


def test_a_dataset_that_cannot_be_read_is_tied_to_nothing():
    a, b = Files("/data", 3), Files("/data", 3)
    a.files = b.files = Unreadable()
    first, second = dataset_identity(a), dataset_identity(b)
    assert not first.content and first.fingerprint.startswith("unreadable-") and first.key != second.key


# ---------------------------------------------------------------------- the export, on one process
def _epochs(model, optimizer, train_loader, val_loader, epochs):
    for _ in range(epochs):
        model.train()
        for xb, yb in train_loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for xb, _ in val_loader:
                model(xb)


def _data():
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(100, 8, generator=g), torch.randint(0, 2, (100,), generator=g))
    return ds, Subset(ds, list(range(0, 80))), Subset(ds, list(range(80, 100)))


def test_a_rank_exports_its_served_sets_and_rewrites_only_what_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    ds, train_ds, val_ds = _data()
    model = nn.Linear(8, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sampler = DistributedSampler(train_ds, num_replicas=2, rank=1, shuffle=False)  # no process group needed
    # hard links to the first epoch's files keep their inodes in use: a file rewritten since (a new
    # file renamed over it) cannot come back with the same inode number, as ext4 would otherwise allow
    held = tmp_path / "held"
    held.mkdir()
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False) as run:
        folder = run.report_dir / SERVED_FOLDER
        for epoch in range(2):
            _epochs(model, optimizer, DataLoader(train_ds, batch_size=10, sampler=sampler),
                    DataLoader(val_ds, batch_size=10), 1)
            if epoch == 0:
                for p in folder.iterdir():
                    os.link(p, held / p.name)
                mtimes = {p.name: p.stat().st_mtime_ns for p in held.iterdir()}
    assert folder == tmp_path / "wd" / "rank1" / "served"
    assert sorted(n.split("-")[0] for n in mtimes) == ["eval", "first", "index.json", "train"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(mtimes)  # no .tmp left, no other file
    bitmaps = [name for name in mtimes if name.endswith(".bits")]
    for name in bitmaps:  # the second epoch served the same sets: no bitmap rewritten
        assert os.path.samefile(folder / name, held / name), f"{name} was rewritten"
        assert (folder / name).stat().st_mtime_ns == mtimes[name], f"{name} was rewritten in place"
    # index.json did change (each loader stream's passes): rewritten, the first epoch's left intact
    assert not os.path.samefile(folder / "index.json", held / "index.json")
    def passes(index):  # each train and eval loader stream's passes, as the index names them
        served = json.loads(index.read_text())["served"]
        return [loader["passes"] for role in ("train", "eval") for entry in served[role].values()
                for loader in entry["loaders"]]
    assert (passes(held / "index.json"), passes(folder / "index.json")) == ([1, 1], [2, 2])
    export = read_served(1, folder.parent)
    [base_id] = export.bases
    assert export.bases[base_id]["identity"] == dataset_identity(ds).to_dict()
    trained = export.indices(export.served("train")[base_id])
    assert sorted(trained.first(100)) == list(range(1, 80, 2))  # rank 1's shard of the first 80
    assert len(export.indices(export.served("eval")[base_id])) == 20
    assert len(export.indices(export.first_train[base_id])) == 40
    assert all((folder / export.served(role)[base_id]["file"]).stat().st_size == 13 for role in ("train", "eval"))


def test_one_process_exports_nothing_and_a_rank_clears_an_earlier_export(tmp_path, monkeypatch):
    ds, train_ds, val_ds = _data()
    model = nn.Linear(8, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watchdog.watch(report_dir=tmp_path / "one", summary=False) as run:
        _epochs(model, optimizer, DataLoader(train_ds, batch_size=10), DataLoader(val_ds, batch_size=10), 1)
    assert not (run.report_dir / SERVED_FOLDER).exists()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    stale = tmp_path / "wd" / "rank0" / SERVED_FOLDER
    stale.mkdir(parents=True)
    (stale / "train-0000000000000000.bits").write_bytes(b"\xff")
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False):
        pass  # a rank that served nothing leaves nothing of the earlier run's
    assert not stale.exists()


# ---------------------------------------------------------------------- the sampler rule, on one process
@pytest.mark.parametrize("epochs, shuffle, found", [
    (lambda e: 0, True, True),        # set_epoch(0) each epoch: the same order
    (lambda e: e, True, False),       # set_epoch(epoch)
    (None, False, False),             # shuffle=False, set_epoch never called
], ids=["set_epoch(0)", "set_epoch(epoch)", "shuffle=False"])
def test_the_sampler_epoch_rule(report_dir, epochs, shuffle, found):
    ds, train_ds, val_ds = _data()
    model = nn.Linear(8, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sampler = DistributedSampler(train_ds, num_replicas=2, rank=0, shuffle=shuffle)
    loader = DataLoader(train_ds, batch_size=10, sampler=sampler)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        for epoch in range(3):
            if epochs is not None:
                sampler.set_epoch(epochs(epoch))
            _epochs(model, optimizer, loader, DataLoader(val_ds, batch_size=10), 1)
    codes = [f.code for f in run.findings]
    assert ("distributed/sampler-epoch-unchanged" in codes) is found, [str(f) for f in run.findings]
    assert [f for f in run.findings if f.severity != "info" and f.code != "distributed/sampler-epoch-unchanged"] == []
