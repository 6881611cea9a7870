"""Issue 11, the backbone: real torchrun jobs (2 ranks, gloo, CPU) give per-rank folders and one
merged report, written and printed once by the last rank to finish; a rank killed mid-run is named,
nothing hangs; ``watchdog report DIR`` merges a job's folders; stale folders of an earlier job are
left out; the merge is bounded (each log read once, never a wait).

Four launches in all, each shared by the tests that read it (module-scoped fixtures); every launch
and every subprocess has a timeout.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.torchrun import DIST_INIT, ROOT, launch

REPORT_TIMEOUT_S = 120

# A correct DDP loop: a DistributedSampler with set_epoch, every rank evaluating its shard.
CLEAN_DDP = DIST_INIT + """
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler
torch.manual_seed(0)
train_set = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
val_set = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
sampler = DistributedSampler(train_set, shuffle=True)
train_loader = DataLoader(train_set, batch_size=8, sampler=sampler)
val_loader = DataLoader(val_set, batch_size=8, sampler=DistributedSampler(val_set, shuffle=False))
for epoch in range(EPOCHS):
    sampler.set_epoch(epoch)
    KILL_POINT
    model.train()
    for x, y in train_loader:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for x, y in EVAL_LOADER:
            model(x)
dist.destroy_process_group()
"""


def ddp_script(epochs: int = 2, eval_loader: str = "val_loader", kill_point: str = "pass") -> str:
    return (CLEAN_DDP.replace("EPOCHS", str(epochs)).replace("EVAL_LOADER", eval_loader)
            .replace("KILL_POINT", kill_point))


def read_report(directory: Path) -> dict:
    return json.loads((directory / "report.json").read_text())


def merged_summaries(output: str) -> int:
    return output.count("ranks (merged by")


def watchdog_report(directory: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-m", "watchdog", "report", str(directory)], capture_output=True,
                          text=True, timeout=REPORT_TIMEOUT_S, env=env)


# ---------------------------------------------------------------------------------------------- jobs
def plant_earlier_job_rank2(report_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DIR/rank2/ as rank 2 of an earlier 3-rank job leaves it: a real watched run (validating on its
    training loader, so it holds a finding the new job must not inherit)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    import watchdog

    for name, value in {"RANK": "2", "WORLD_SIZE": "3", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "3",
                        "TORCHELASTIC_RUN_ID": "an-earlier-job", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(name, value)
    loader = DataLoader(TensorDataset(torch.randn(16, 4), torch.randn(16, 1)), batch_size=8)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False):
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        with torch.no_grad():
            for x, y in loader:
                model(x)


@pytest.fixture(scope="module")
def clean_job(tmp_path_factory):
    """A correct DDP job started with the `torchrun` command, into a DIR holding an earlier job's rank2/."""
    tmp = tmp_path_factory.mktemp("clean")
    with pytest.MonkeyPatch.context() as monkeypatch:
        plant_earlier_job_rank2(tmp / "wd", monkeypatch)
    assert json.loads((tmp / "wd" / "rank2" / "report.json").read_text())["findings"]
    return launch(tmp, ddp_script(), launcher="torchrun")


@pytest.fixture(scope="module")
def same_data_job(tmp_path_factory):
    """Each rank validates on its training loader; every rank prints its lines (--rank-lines)."""
    return launch(tmp_path_factory.mktemp("same"), ddp_script(eval_loader="train_loader"),
                  options=("--rank-lines",))


@pytest.fixture(scope="module")
def killed_job(tmp_path_factory):
    """Rank 1 killed (SIGKILL) as epoch 1 begins."""
    kill = "if RANK == 1 and epoch == 1: import signal; os.kill(os.getpid(), signal.SIGKILL)"
    return launch(tmp_path_factory.mktemp("killed"), ddp_script(epochs=3, kill_point=kill))


@pytest.fixture(scope="module")
def decorated_job(tmp_path_factory):
    """`@watchdog.watch(summary=False)` inside a script torchrun starts; WATCHDOG_RANK_LINES=1."""
    body = ddp_script().replace(DIST_INIT, "")
    script = DIST_INIT + "import watchdog\n\n@watchdog.watch(summary=False)\ndef train():\n" + "".join(
        f"    {line}\n" for line in body.splitlines()) + "\ntrain()\n"
    return launch(tmp_path_factory.mktemp("decorated"), script, watched=False, env={"WATCHDOG_RANK_LINES": "1"})


# --------------------------------------------------------------------------------------- clean job
def test_a_clean_ddp_job_gives_rank_folders_and_one_merged_report_with_no_findings(clean_job):
    assert clean_job.proc.returncode == 0, clean_job.output[-3000:]
    wd = clean_job.report_dir
    for rank in (0, 1):
        assert (wd / f"rank{rank}" / "report.json").is_file() and (wd / f"rank{rank}" / "report.html").is_file()
    report = read_report(wd)
    assert report["findings"] == [] and report["summary"]["errors"] == 0
    assert report["run"]["status"] == "ok" and report["summary"]["epochs"] == 2
    ranks = report["ranks"]
    assert [(r["rank"], r["state"], r["epochs"], r["steps"], r["findings"]) for r in ranks["ranks"]] == [
        (0, "finished", 2, 8, 0), (1, "finished", 2, 8, 0)]
    assert ranks["world_size"] == 2 and ranks["representative"] == 0 and ranks["merged_by"] in (0, 1)
    html = (wd / "report.html").read_text()
    assert '<section id="ranks">' in html and 'data-rank="1" data-state="finished"' in html
    assert 'href="rank1/report.html"' in html


def test_the_job_prints_one_merged_summary_and_only_rank_0_prints_epoch_lines(clean_job):
    out = clean_job.output
    assert merged_summaries(out) == 1, out
    assert out.count("watchdog: run completed") == 1  # the merged headline; no rank printed its own
    assert out.count("watchdog: report written to") == 1
    assert f"report written to {clean_job.report_dir / 'report.html'}" in out
    epoch_lines = [line for line in out.splitlines() if line.startswith("[watchdog] epoch")]
    assert len(epoch_lines) == 2 and all("rank 0/2" in line for line in epoch_lines), epoch_lines


def test_a_stale_folder_of_an_earlier_job_is_named_and_not_merged(clean_job):
    ranks = read_report(clean_job.report_dir)["ranks"]
    assert [(s["folder"], s["state"], s["job"].split(":")[0]) for s in ranks["stale"]] == [
        ("rank2", "stale", "an-earlier-job")]
    assert len(ranks["ranks"]) == 2  # rank2/ is no rank of this 2-rank job
    assert "rank2/ is from another run" in clean_job.output


def test_watchdog_report_merges_the_job_again_and_rerenders_one_rank_folder(clean_job, tmp_path):
    wd = tmp_path / "wd"
    shutil.copytree(clean_job.report_dir, wd)
    before = read_report(wd)
    (wd / "report.json").unlink()
    proc = watchdog_report(wd)
    assert proc.returncode == 0, proc.stderr
    again = read_report(wd)
    assert again["ranks"]["merged_by"] is None and "merged by watchdog report" in proc.stderr
    strip = lambda r: [(x["rank"], x["state"], x["epochs"], x["steps"]) for x in r["ranks"]["ranks"]]  # noqa: E731
    assert strip(again) == strip(before) and again["findings"] == before["findings"]
    one = watchdog_report(wd / "rank1")
    assert one.returncode == 0 and "ranks (merged by" not in one.stderr
    assert f"report written to {wd / 'rank1' / 'report.html'}" in one.stderr
    assert "ranks" not in read_report(wd / "rank1")


def test_watchdog_report_never_replaces_a_merged_report_with_one_that_knows_less(clean_job, tmp_path):
    wd = tmp_path / "wd"
    shutil.copytree(clean_job.report_dir, wd)
    before = {name: (wd / name).read_bytes() for name in ("report.json", "report.html")}
    (wd / "rank1" / "events.jsonl").write_text("garbage{\n")  # rank 1's log damaged after the merge
    proc = watchdog_report(wd)
    assert proc.returncode == 2, proc.stderr
    assert "not merging" in proc.stderr and "events of rank 1, its log now gives 0 (1 unreadable line)" in proc.stderr
    assert {name: (wd / name).read_bytes() for name in before} == before  # left as they were
    (wd / "report.json").unlink()  # no merged report to lose: the merge names what it could not read
    proc = watchdog_report(wd)
    assert proc.returncode == 0, proc.stderr
    ranks = {r["rank"]: r for r in read_report(wd)["ranks"]["ranks"]}
    assert ranks[0]["state"] == "finished" and ranks[1]["state"] == "never started"
    assert ranks[1]["unreadable_lines"] == 1 and "its log is damaged" in ranks[1]["describe"]
    assert "rank 1 never started, or its log is damaged (rank1/: no readable run start, 1 unreadable line)" \
        in proc.stderr


def test_watchdog_report_on_rank_folders_with_no_readable_log_writes_nothing(clean_job, tmp_path):
    wd = tmp_path / "wd"
    shutil.copytree(clean_job.report_dir, wd)
    shutil.rmtree(wd / "rank2")
    (wd / "rank0" / "events.jsonl").write_text("garbage{\n")
    (wd / "rank1" / "events.jsonl").write_bytes(b"\x00\x01\n{}\n")
    before = {name: (wd / name).read_bytes() for name in ("report.json", "report.html")}
    proc = watchdog_report(wd)
    assert proc.returncode == 2, proc.stderr
    assert ("no rank folder of" in proc.stderr and "rank0/events.jsonl: 1 line, none readable" in proc.stderr
            and "rank1/events.jsonl: 2 lines, none readable" in proc.stderr and "nothing was written" in proc.stderr)
    assert {name: (wd / name).read_bytes() for name in before} == before


# ------------------------------------------------------------------------------------ per-rank finding
def test_a_finding_on_both_ranks_is_one_merged_finding_naming_ranks_0_and_1(same_data_job):
    assert same_data_job.proc.returncode == 0, same_data_job.output[-3000:]
    report = read_report(same_data_job.report_dir)
    same = [f for f in report["findings"] if f["code"] == "overlap/same-loader"]
    assert len(same) == 1 and same[0]["ranks"] == [0, 1] and same[0]["message"].startswith("ranks 0, 1: ")
    assert same[0]["severity"] == "error" and report["summary"]["errors"] >= 1
    assert [r["findings"] for r in report["ranks"]["ranks"]] == [1, 1]
    html = (same_data_job.report_dir / "report.html").read_text()
    assert html.count("<div class=\"finding ") == len(report["findings"]) and "ranks 0, 1: " in html


def test_rank_lines_makes_every_rank_print_its_lines_and_summary_and_the_merge_still_prints_once(same_data_job):
    out = same_data_job.output
    assert merged_summaries(out) == 1
    for rank in (0, 1):
        assert any(line.startswith("[watchdog] epoch") and f"rank {rank}/2" in line for line in out.splitlines())
        assert f"report written to {same_data_job.report_dir / f'rank{rank}' / 'report.html'}" in out
    assert f"report written to {same_data_job.report_dir / 'report.html'}" in out


# ----------------------------------------------------------------------------------------- killed rank
def test_a_rank_killed_mid_run_ends_the_job_and_the_surviving_rank_merges_naming_it_died(killed_job):
    assert killed_job.proc.returncode != 0  # torchrun reports the failure; nothing hung (timeout)
    report = read_report(killed_job.report_dir)
    assert report["ranks"]["merged_by"] == 0
    assert killed_job.output.count("rank 1 died in epoch 1") == 1, killed_job.output[-3000:]
    assert merged_summaries(killed_job.output) == 1
    assert [r["state"] for r in report["ranks"]["ranks"]] == ["finished", "died"]


def test_watchdog_report_names_the_killed_rank_died_with_its_flushed_events(killed_job):
    wd = killed_job.report_dir
    assert not (wd / "rank1" / "report.json").exists()  # rank 1 never wrote its report: only its flushed log
    (wd / "report.json").unlink()
    proc = watchdog_report(wd)
    assert proc.returncode == 0, proc.stderr
    report = read_report(wd)
    by_rank = {r["rank"]: r for r in report["ranks"]["ranks"]}
    assert by_rank[1]["state"] == "died" and by_rank[1]["describe"].startswith("died in epoch 1")
    assert by_rank[1]["epochs"] == 1 and by_rank[1]["steps"] == 4 and by_rank[1]["events"] > 3
    assert by_rank[0]["state"] == "finished"
    assert report["run"]["status"] != "ok" and report["ranks"]["representative"] == 0
    assert "rank 1 died in epoch 1, last seen at step 4" in proc.stderr
    assert 'data-rank="1" data-state="died"' in (wd / "report.html").read_text()


# ------------------------------------------------------------------------------- @watchdog.watch
def test_watch_decorator_in_a_torchrun_script_merges_and_rank_lines_come_from_the_environment(decorated_job):
    assert decorated_job.proc.returncode == 0, decorated_job.output[-3000:]
    wd = decorated_job.report_dir
    report = read_report(wd)
    assert [r["state"] for r in report["ranks"]["ranks"]] == ["finished", "finished"]
    assert report["findings"] == []
    out = decorated_job.output
    for rank in (0, 1):
        assert (wd / f"rank{rank}" / "report.json").is_file()
        assert any(line.startswith("[watchdog] epoch") and f"rank {rank}/2" in line for line in out.splitlines())
    # summary=False: no headline; the merging rank says only where the merged report is.
    assert "watchdog: run completed" not in out and out.count("watchdog: report written to") == 1
    assert f"report written to {wd / 'report.html'}" in out


# ------------------------------------------------------------------------------------ the merge's bound
def test_the_merge_reads_each_rank_log_once_and_never_waits(clean_job, tmp_path, monkeypatch):
    from watchdog.distributed import finish, records

    wd = tmp_path / "wd"
    shutil.copytree(clean_job.report_dir, wd)
    opened: list[Path] = []
    real_read = records.read_events
    monkeypatch.setattr(records, "read_events", lambda path, **kw: (opened.append(Path(path)), real_read(path, **kw))[1])
    asked: list[int] = []

    def process(info, t_start):  # the job's ranks finished: nobody's process is asked about
        asked.append(info.get("rank"))
        return "alive"

    job, report = finish.merge_run(wd, summary=False, process=process)
    assert sorted(p.parent.name for p in opened) == ["rank0", "rank1", "rank2"]  # each log once, stale too
    assert asked == []
    work = report["ranks"]["work"]
    assert work["logs_read"] == 3 and work["bytes_read"] == sum(
        (wd / f"rank{r}" / "events.jsonl").stat().st_size for r in range(3))


def test_deciding_whether_to_merge_reads_two_ends_of_each_log_whatever_its_size(clean_job, tmp_path):
    from watchdog.distributed import job, records

    wd = tmp_path / "wd"
    shutil.copytree(clean_job.report_dir, wd)
    log = wd / "rank1" / "events.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    with log.open("w") as f:  # rank 1's real events, its middle repeated to 8 MiB, its run_end last
        f.write(lines[0])
        while f.tell() < 8 << 20:
            f.writelines(lines[1:-1])
        f.write(lines[-1])
    info = read_report(wd)["ranks"]["ranks"]
    key = (info[0]["job"], 0)
    ready = job.readiness(wd, key, world_size=2, own_rank=0, process=lambda i, t: pytest.fail("not asked"))
    assert ready.done and ready.bytes_read <= records.PEEK_HEAD_BYTES + records.PEEK_TAIL_BYTES
    # A rank whose log has no end yet and whose process is alive: not done, and nothing waits for it.
    log.write_text("".join(lines[:-1]))
    ready = job.readiness(wd, key, world_size=2, own_rank=0, process=lambda i, t: "alive")
    assert not ready.done and ready.waiting == [1] and ready.elsewhere == []
    ready = job.readiness(wd, key, world_size=2, own_rank=0, process=lambda i, t: "elsewhere")
    assert not ready.done and ready.elsewhere == [1]
    ready = job.readiness(wd, key, world_size=2, own_rank=0, process=lambda i, t: "gone")
    assert ready.done
    # A rank whose folder holds no run of this job (rank2/: an earlier job's) may still be starting.
    ready = job.readiness(wd, key, world_size=3, own_rank=0, process=lambda i, t: "gone")
    assert not ready.done and ready.waiting == [2]
    merged = job.read_job(wd, key, process=lambda i, t: "alive")
    assert [s.describe() for s in merged.ranks] == ["finished", f"not finished (running on {socket.gethostname()})"]


def test_only_one_rank_claims_the_merge(tmp_path):
    from watchdog.distributed.finish import claim_name, try_claim

    key = ("job-a", 0)
    assert try_claim(tmp_path, key, 0) is True
    assert try_claim(tmp_path, key, 1) is False
    assert try_claim(tmp_path, ("job-a", 1), 1) is True  # the process's next watched run merges anew
    assert (tmp_path / claim_name(key)).read_text().startswith("rank 0 ")


def test_a_rank_process_is_alive_gone_or_elsewhere():
    from watchdog.distributed.job import process_state

    here = {"host": socket.gethostname(), "pid": os.getpid()}
    assert process_state(here, time.time()) == "alive"
    assert process_state(here, time.time() - 10 ** 6) == "gone"  # this pid's process began after that run
    assert process_state({**here, "host": "another-host"}, time.time()) == "elsewhere"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    assert process_state({**here, "pid": child.pid}, time.time()) == "gone"


SIGTERM_WHILE_STOPPING = """\
import os, signal, sys
from pathlib import Path
import watchdog
from watchdog.core import registry

def terminated_by_the_launcher(run):  # torchrun's SIGTERM, arriving while the run ends
    os.kill(os.getpid(), signal.SIGTERM)

def after_it(run):
    Path(sys.argv[1], "after-the-signal").write_text("the run's end went on")

registry.run_end_hooks = lambda: [terminated_by_the_launcher, after_it]
with watchdog.watch(report_dir=sys.argv[1], summary=False, dashboard=False):
    pass
print("not reached: the SIGTERM takes effect once the run has ended", flush=True)
"""


def test_a_sigterm_while_the_run_ends_takes_effect_once_its_report_and_merge_are_written(tmp_path):
    """torchrun terminates the surviving ranks right after one dies, often while they write their
    report and merge: the signal then waits for the end of stop() and takes effect after it."""
    script = tmp_path / "stopping.py"
    script.write_text(SIGTERM_WHILE_STOPPING)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "wd")], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -15, proc.stderr
    assert (tmp_path / "wd" / "after-the-signal").is_file() and (tmp_path / "wd" / "report.json").is_file()
    assert "not reached" not in proc.stdout


def test_watchdog_report_merges_rank_folders_unless_a_one_process_run_wrote_dir_since(clean_job, tmp_path, monkeypatch):
    import watchdog
    from watchdog.distributed.finish import holds_ranks

    wd = tmp_path / "wd"
    shutil.copytree(clean_job.report_dir, wd)
    assert holds_ranks(wd) and not holds_ranks(wd / "rank0")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with watchdog.watch(report_dir=wd, summary=False, dashboard=False):
        pass  # a one-process run in the same DIR, after the job: `watchdog report DIR` is about it now
    assert not holds_ranks(wd)
