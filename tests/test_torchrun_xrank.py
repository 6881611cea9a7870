"""Cross-rank checks on checkpoints, evaluation and memory, on real 2-rank torchrun jobs (gloo, CPU).

Four launches, shared by the tests (module-scoped fixtures): one script in which every rank does the
wrong thing (saves to one path, never evaluates, leaks), one in which the ranks differ (rank 1 leaks
alone, the ranks evaluate different epochs, each rank saves its own file), one correct loop (rank 0
evaluates and saves, per-rank files, ``torch.distributed.checkpoint``), and a step-based loop that
evaluates on rank 0 only (nanoGPT's ``if master_process: estimate_loss()``). Each job's rank folders
are merged with ``merge_directory`` (every feature's cross-rank checks), as the last rank does.
"""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from torchrun import DIST_INIT, launch
from watchdog.distributed.checkpoints import SameCheckpointPath
from watchdog.distributed.merge import figures_per_rank, merge_directory
from watchdog.distributed.records import read_rank_records

EPOCHS = 7  # the memory rule needs 5 epoch ends after the first; 7 leaves no doubt
STEPS_PER_EPOCH = 20  # 320 training samples, 160 per rank, batches of 8

LOOP = DIST_INIT + '''
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split
from torch.utils.data.distributed import DistributedSampler

g = torch.Generator().manual_seed(0)
data = TensorDataset(torch.randn(384, 8, generator=g), torch.randn(384, 1, generator=g))
train_set, val_set = random_split(data, [320, 64], generator=torch.Generator().manual_seed(1))
sampler = DistributedSampler(train_set, shuffle=True, seed=0)
loader = DataLoader(train_set, batch_size=8, sampler=sampler)
val_loader = DataLoader(val_set, batch_size=32)
model = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1)))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
history = []


def evaluate():
    model.eval()
    with torch.no_grad():
        for x, y in val_loader:
            model.module(x)
    model.train()


def state(epoch):
    return {"model": model.module.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}


for epoch in range(%(epochs)d):
    sampler.set_epoch(epoch)
    for x, y in loader:
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
%(per_step)s
%(per_epoch)s
%(after)s
dist.destroy_process_group()
'''


def loop(per_step: str, per_epoch: str, after: str = "") -> str:
    indent = lambda text, n: "\n".join(" " * n + line for line in text.strip().splitlines())  # noqa: E731
    return LOOP % {"epochs": EPOCHS, "per_step": indent(per_step, 8), "per_epoch": indent(per_epoch, 4),
                   "after": after.strip()}


# Every rank: the same checkpoint file, no evaluation at all, the losses kept with their graphs.
EVERY_RANK_WRONG = loop(
    per_step="history.append(loss)",
    per_epoch='torch.save(state(epoch), "ckpt.pt")')

# The ranks differ: rank 1 alone leaks; rank 0 evaluates the even epochs and rank 1 epoch 1, so no
# rank alone keeps the cadence and the union still misses epochs 3 and 5; each rank saves its own
# file; one shared file is written by rank 0 at epoch 0 and by rank 1 at the last epoch (no race).
RANKS_DIFFER = loop(
    per_step="if RANK == 1:\n    history.append(loss)",
    per_epoch='''
if (RANK == 0 and epoch % 2 == 0) or (RANK == 1 and epoch == 1):
    evaluate()
torch.save(state(epoch), f"ckpt_rank{RANK}.pt")
if (RANK == 0 and epoch == 0) or (RANK == 1 and epoch == EPOCHS - 1):
    torch.save(state(epoch), "handover.pt")
'''.replace("EPOCHS", str(EPOCHS)))

# A correct loop: rank 0 evaluates and saves the checkpoint, every rank its own file, a sharded save.
CORRECT = loop(
    per_step="history.append(loss.item())",
    per_epoch='''
if RANK == 0:
    evaluate()
    torch.save(state(epoch), "ckpt.pt")
torch.save(state(epoch), f"ckpt_rank{RANK}.pt")
''',
    after='''
import torch.distributed.checkpoint as dcp
dcp.save({"model": model.module.state_dict()}, checkpoint_id="dcp_ckpt")
dist.barrier()
assert sorted(os.listdir("dcp_ckpt")) == [".metadata", "__0_0.distcp", "__1_0.distcp"], os.listdir("dcp_ckpt")
''')

# Step-based (nanoGPT): no epochs, rank 0 alone estimates the loss every 200 steps.
STEPS = 1200
STEP_BASED_RANK0_EVAL = DIST_INIT + f'''
from torch import nn
g = torch.Generator().manual_seed(RANK)
X, Y = torch.randn(64, 8, generator=g), torch.randn(64, 1, generator=g)
model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01)


def estimate_loss():
    model.eval()
    with torch.no_grad():
        loss = nn.functional.mse_loss(model(X), Y).item()
    model.train()
    return loss


for step in range({STEPS}):
    if step % 200 == 0 and RANK == 0:
        estimate_loss()
    i = torch.randint(0, 64, (8,), generator=g)
    loss = nn.functional.mse_loss(model(X[i]), Y[i])
    opt.zero_grad()
    loss.backward()
    opt.step()
dist.destroy_process_group()
'''

def line_of(script: str, text: str) -> int:
    return next(i for i, line in enumerate(script.splitlines(), 1) if text in line)


CENSUS_EVERY_EPOCH = {"WATCHDOG_MEMORY_CENSUS": "every-epoch"}  # short epochs: the census' time budget would skip them


class Merged:
    """A finished job, its ranks' records and their merged findings."""

    def __init__(self, tmp_path, script: str):
        self.job = launch(tmp_path, script, env=CENSUS_EVERY_EPOCH)
        assert self.job.proc.returncode == 0, self.job.output[-4000:]
        self.records, merged = merge_directory(self.job.report_dir)
        assert not merged.failed_checks, merged.failed_checks
        self.findings = merged.findings
        # what the last rank to finish wrote: the merged report
        self.report = json.loads((self.job.report_dir / "report.json").read_text())

    def of(self, code: str) -> list[dict]:
        return [f for f in self.findings if f["code"] == code]

    def family(self, prefix: str) -> list[dict]:
        return [f for f in self.findings if f["code"].startswith(prefix)]

    def rank_findings(self, rank: int, code: str) -> list[dict]:
        record = next(r for r in self.records if r.rank == rank)
        return [f for f in record.findings() if f["code"] == code]


@pytest.fixture(scope="module")
def every_rank_wrong(tmp_path_factory):
    return Merged(tmp_path_factory.mktemp("every_rank_wrong"), EVERY_RANK_WRONG)


@pytest.fixture(scope="module")
def ranks_differ(tmp_path_factory):
    return Merged(tmp_path_factory.mktemp("ranks_differ"), RANKS_DIFFER)


@pytest.fixture(scope="module")
def correct(tmp_path_factory):
    return Merged(tmp_path_factory.mktemp("correct"), CORRECT)


@pytest.fixture(scope="module")
def step_based(tmp_path_factory):
    return Merged(tmp_path_factory.mktemp("step_based"), STEP_BASED_RANK0_EVAL)


# ---------------------------------------------------------------- distributed/same-checkpoint-path
def test_every_rank_saving_to_one_path_is_one_error_naming_ranks_path_steps_and_fix(every_rank_wrong):
    [finding] = every_rank_wrong.of("distributed/same-checkpoint-path")
    path = str(every_rank_wrong.job.report_dir.parent / "ckpt.pt")
    assert finding["severity"] == "error"
    assert finding["ranks"] == [0, 1]
    assert finding["evidence"]["path"] == path and finding["key"] == path
    steps = [STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS)]
    assert finding["evidence"]["steps"] == steps
    assert finding["evidence"]["collisions"] == EPOCHS and finding["evidence"]["same_host"] is True
    message = finding["message"]
    assert message.startswith(f"ranks 0, 1 saved checkpoints to the same file {path} at the same step "
                              f"({EPOCHS} times, at steps 20, 40, 60, 80, 100, …)")
    assert "torn checkpoint" in message
    assert "if dist.get_rank() == 0:" in finding["fix"] and 'f"ckpt_rank{dist.get_rank()}.pt"' in finding["fix"]
    assert finding["where"] == f"train.py:{line_of(EVERY_RANK_WRONG, 'torch.save(')}"


def test_one_path_shared_only_across_hosts_is_a_warning_that_says_when_it_is_one_file(every_rank_wrong):
    """The same job as if rank 1 had run on another node: the path is one file only on a shared file system."""
    records = every_rank_wrong.records
    for record in records:
        if record.rank == 1:
            start = next(e for e in record.events if e.kind == "run_start")
            start.data["rank"] = {**start.data["rank"], "host": "node-b"}
    try:
        [finding] = SameCheckpointPath().check(records)
    finally:
        for record in records:
            start = next(e for e in record.events if e.kind == "run_start")
            start.data["rank"] = {**start.data["rank"], "host": next(
                r for r in records if r.rank == 0).rank_info["host"]}
    assert finding.severity == "warning" and finding.evidence["same_host"] is False
    assert "node-b" in finding.message and "shared file system" in finding.message and "local disk" in finding.message


def test_distinct_paths_a_path_reused_far_apart_rank0_saves_and_sharded_saves_are_fine(ranks_differ, correct):
    assert not ranks_differ.of("distributed/same-checkpoint-path")  # ckpt_rank{RANK}.pt; handover.pt 6 epochs apart
    saved = {e.data["path"] for r in ranks_differ.records for e in r.of_kind("checkpoint_saved")}
    assert {p.rsplit("/", 1)[1] for p in saved} == {"ckpt_rank0.pt", "ckpt_rank1.pt", "handover.pt"}
    assert not correct.of("distributed/same-checkpoint-path")  # rank 0's ckpt.pt, per-rank files, dcp.save


# ---------------------------------------------------------------- evaluation on any rank
def test_no_rank_evaluating_is_one_merged_missing_epochs_naming_the_ranks(every_rank_wrong):
    [finding] = every_rank_wrong.family("eval/")
    assert finding["code"] == "eval/missing-epochs" and finding["ranks"] == [0, 1]
    assert finding["severity"] == "warning"  # held-out data (val_loader) was there, never iterated
    assert finding["message"].startswith(
        f"ranks 0, 1: Epochs 0–{EPOCHS - 1} of {EPOCHS} had no evaluation on any rank; no evaluation ran at all")
    assert finding["evidence"]["missing_epochs"] == list(range(EPOCHS))
    assert "val_loader" in finding["evidence"]["held_out_data"]
    assert finding["check"] == "eval-cadence-across-ranks"


def test_the_cadence_rule_applies_to_the_union_of_the_ranks_evaluated_epochs(ranks_differ):
    [finding] = ranks_differ.family("eval/")
    evidence = finding["evidence"]
    assert evidence["missing_epochs"] == [3, 5]
    assert evidence["evaluated_epochs"] == [0, 1, 2, 4, 6]
    assert evidence["evaluated_by_rank"] == {"0": [0, 2, 4, 6], "1": [1]}
    assert finding["message"] == (f"ranks 0, 1: Epochs 3, 5 of {EPOCHS} had no evaluation on any rank (expected "
                                  "one after every epoch); evaluated epochs: 0–2, 4, 6.")
    # Each rank's own report keeps what that rank saw, as info: it cannot know what the other evaluated.
    [own] = ranks_differ.rank_findings(0, "eval/missing-epochs")
    assert own["severity"] == "info" and own["evidence"]["missing_epochs"] == [1, 3, 5]
    assert "rank 0's own epochs" in own["message"]


def test_rank0_evaluating_alone_leaves_no_eval_finding_in_the_merged_report(correct):
    assert not correct.family("eval/")
    [own] = correct.rank_findings(1, "eval/missing-epochs")  # rank 1 alone evaluated nothing
    assert own["severity"] == "info"
    assert correct.rank_findings(0, "eval/missing-epochs") == []


def test_step_based_loop_evaluating_on_rank0_alone_is_clean(step_based):
    assert not step_based.family("eval/")
    [own] = step_based.rank_findings(1, "eval/never")
    assert own["severity"] == "info" and "rank 1 alone" in own["message"]
    summaries = {r.rank: next(r.of_kind("eval_summary")).data for r in step_based.records}
    # step 0 (before the model is known as trained) is no evaluation point; 200, 400, ... are
    assert summaries[0]["eval_steps"] == list(range(200, STEPS, 200)) and summaries[1]["eval_steps"] == []


# ---------------------------------------------------------------- memory growth per rank
def test_a_leak_on_every_rank_is_one_memory_finding_naming_the_ranks(every_rank_wrong):
    [finding] = every_rank_wrong.family("memory/")
    assert finding["code"] == "memory/tensor-growth" and finding["ranks"] == [0, 1]
    message = finding["message"]
    assert message.startswith(f"ranks 0, 1: Live tensors grow every epoch since epoch ")
    assert f"+{STEPS_PER_EPOCH} tensors/epoch" in message  # each rank's rate, the same on both
    assert "figures;" not in message  # no "rank 0's figures" disclaimer: the words are one
    own = [every_rank_wrong.rank_findings(r, "memory/tensor-growth")[0]["message"] for r in (0, 1)]
    if own[0] != own[1]:  # RSS differs per process: each rank's figure named
        assert set(finding["evidence"]["ranks"]) == {"0", "1"}
        assert "(rank 0)" in message and "(rank 1)" in message


def test_a_leak_on_rank1_alone_names_rank1(ranks_differ):
    [finding] = ranks_differ.family("memory/")
    assert finding["code"] == "memory/tensor-growth" and finding["ranks"] == [1]
    assert finding["message"].startswith("rank 1: Live tensors grow every epoch")
    assert f"+{STEPS_PER_EPOCH} tensors/epoch" in finding["message"]


def test_a_clean_loop_has_no_memory_finding(correct):
    assert not correct.family("memory/")


def test_messages_that_differ_only_in_figures_list_each_ranks_figure(every_rank_wrong):
    """Rank 0's real message, and the same with other figures as another rank would measure them."""
    [rank0] = every_rank_wrong.rank_findings(0, "memory/tensor-growth")
    message = rank0["message"]
    rate = f"+{STEPS_PER_EPOCH} tensors/epoch"
    other = message.replace(rate, "+31 tensors/epoch")
    merged = figures_per_rank([(0, message), (1, other), (2, message)])
    assert merged == message.replace(rate, f"{rate} (ranks 0, 2), +31 tensors/epoch (rank 1)")
    assert figures_per_rank([(0, message), (1, message.replace("Live tensors", "Dead tensors"))]) is None
    assert figures_per_rank([(0, "saved to ckpt_rank0.pt"), (1, "saved to ckpt_rank1.pt")]) is None


def _record(rank: int, findings: list[dict]):
    from pathlib import Path

    from watchdog.core.events import Event
    from watchdog.distributed.records import RankRecord

    return RankRecord(rank, Path("."), events=[Event("finding", f, None, 0.0) for f in findings])


def _cuda_growth(device: int, rate: str) -> dict:
    """A memory/cuda-growth finding as the memory check words it (CUDA cannot run here)."""
    return {"code": "memory/cuda-growth", "severity": "warning", "key": f"cuda:{device}",
            "message": f"CUDA memory allocated on cuda:{device} grows +{rate}/epoch since epoch 1 (now 3.2 GiB).",
            "evidence": {"device": f"cuda:{device}"}}


def test_each_ranks_own_device_growing_is_one_finding_and_a_ranks_two_devices_stay_two():
    from watchdog.distributed.merge import merge_findings

    # 2 nodes x 8 GPUs: rank r on cuda:r%8, rank 3 leaking a little faster
    merged = merge_findings([_record(r, [_cuda_growth(r % 8, "22.0 MiB" if r == 3 else "21.0 MiB")])
                             for r in range(16)], [])
    [finding] = merged.findings
    assert finding["ranks"] == list(range(16))
    assert finding["message"] == ("ranks 0–15: CUDA memory allocated on cuda:0–7 (by rank) grows +21.0 MiB/epoch "
                                  "(ranks 0–2, 4–15), +22.0 MiB/epoch (rank 3) since epoch 1 (now 3.2 GiB).")
    assert finding["evidence"]["key_by_rank"]["9"] == "cuda:1"
    # one rank with two devices (model parallel): two findings, as on one process
    merged = merge_findings([_record(0, [_cuda_growth(0, "21.0 MiB"), _cuda_growth(1, "21.0 MiB")])], [])
    assert sorted(f["key"] for f in merged.findings) == ["cuda:0", "cuda:1"]


@pytest.mark.parametrize("launch_name", ["every_rank_wrong", "ranks_differ", "correct", "step_based"])
def test_the_merged_report_json_holds_the_same_findings(launch_name, request):
    """DIR/report.json, written by the last rank to finish, says what merge_directory says."""
    job = request.getfixturevalue(launch_name)
    def shown(findings):
        return sorted((f["code"], tuple(f.get("ranks") or ()), f["severity"], f["message"]) for f in findings
                      if f["code"].split("/")[0] in ("distributed", "eval", "memory"))
    assert shown(job.report["findings"]) == shown(job.findings)
    codes = {f["code"] for f in job.report["findings"]}
    if launch_name in ("correct", "step_based"):
        assert not {c for c in codes if c.startswith(("eval/", "memory/", "distributed/same-checkpoint"))}
    if launch_name == "every_rank_wrong":
        assert {"distributed/same-checkpoint-path", "eval/missing-epochs", "memory/tensor-growth"} <= codes
