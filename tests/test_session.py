"""The watch session: decorator and context manager, patches undone, errors contained (issue 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.optim.optimizer as torch_optimizer
from torch.utils.data import dataloader as torch_dataloader
from torch.utils.data import random_split

import watchdog
from tests.loops import OwnState, fit, loader, make_dataset, make_model, train_epoch
from watchdog.core.check import Check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torch_patch_points():
    base = torch_dataloader._BaseDataLoaderIter
    return (
        base.__dict__["__init__"], base.__dict__["_reset"], base.__dict__["__next__"],
        torch.autograd.backward,
        dict(torch_optimizer._global_optimizer_post_hooks),
    )


def assert_no_patches(before):
    after = torch_patch_points()
    assert after[:4] == before[:4]
    assert after[4] == before[4] == {}


def run_training(seed: int):
    torch.manual_seed(seed)
    ds = make_dataset(512, seed=seed)
    train_ds, val_ds = random_split(ds, [384, 128], generator=torch.Generator().manual_seed(seed))
    model = make_model(seed=seed)
    torch.manual_seed(seed)
    fit(model, loader(train_ds, 32, shuffle=True, num_workers=2), loader(val_ds, 64), epochs=3)
    return [p.detach().clone() for p in model.parameters()], torch.get_rng_state(), torch.rand(3)


def test_watched_training_is_bitwise_identical_to_unwatched(report_dir):
    plain_params, plain_rng, plain_next = run_training(7)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        watched_params, watched_rng, watched_next = run_training(7)
    assert run.loop.steps == 3 * 12 and run.findings == []
    for a, b in zip(plain_params, watched_params):
        assert torch.equal(a, b)
    assert torch.equal(plain_rng, watched_rng) and torch.equal(plain_next, watched_next)


def test_decorator_forms_and_findings_after_exit(report_dir):
    ds = make_dataset(100)

    @watchdog.watch
    def bare(model):
        train_epoch(model, loader(ds), torch.optim.SGD(model.parameters(), lr=0.1))
        return "bare"

    @watchdog.watch(report_dir=report_dir, summary=False)
    def configured(model):
        train_loader = loader(ds)
        fit(model, train_loader, train_loader, epochs=1)
        return "configured"

    cwd = os.getcwd()
    os.chdir(report_dir.parent)
    try:
        assert bare(make_model()) == "bare"
    finally:
        os.chdir(cwd)
    assert (report_dir.parent / "watchdog-report" / "report.json").exists()  # the documented default
    assert bare.watchdog_run.findings == [] and bare.watchdog_run.loop.steps == 4
    assert configured(make_model()) == "configured"
    first = configured.watchdog_run
    assert [f.code for f in first.findings] == ["overlap/same-loader"]
    configured(make_model())  # repeated use: a fresh run each call
    assert configured.watchdog_run is not first and configured.watchdog_run.status == "ok"


def test_patches_are_undone_after_an_exception_and_the_exception_is_unchanged(report_dir):
    before = torch_patch_points()
    error = ValueError("boom in the user's loop")
    with pytest.raises(ValueError) as raised:
        with watchdog.watch(report_dir=report_dir, summary=False) as run:
            assert torch_patch_points()[:4] != before[:4]
            model = make_model()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for i, (x, y) in enumerate(loader(make_dataset(200), num_workers=2)):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
                if i == 3:
                    raise error
    assert raised.value is error
    assert run.status == "exception"
    assert_no_patches(before)
    report = json.loads((report_dir / "report.json").read_text())
    assert report["run"]["status"] == "exception" and report["run"]["exception"] == "ValueError"
    assert report["run"]["steps"] == 4


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3)])
def test_patches_are_undone_after_ctrl_c_and_sys_exit(report_dir, exc):
    before = torch_patch_points()
    with pytest.raises(type(exc)) as raised:
        with watchdog.watch(report_dir=report_dir, summary=False) as run:
            for _ in loader(make_dataset(64)):
                raise exc
    assert raised.value is exc
    assert_no_patches(before)
    assert run.status == ("interrupted" if isinstance(exc, KeyboardInterrupt) else "exit")


def test_nested_watch_joins_the_active_run(report_dir, tmp_path):
    before = torch_patch_points()
    with watchdog.watch(report_dir=report_dir, summary=False) as outer:
        with watchdog.watch(report_dir=tmp_path / "inner", summary=False) as inner:
            assert inner is outer
            train_epoch(make_model(), loader(make_dataset(64)), torch.optim.SGD(make_model().parameters(), lr=0.1))
        assert outer.status == "running"
    assert not (tmp_path / "inner").exists()
    assert outer.status == "ok"
    assert_no_patches(before)


class ExplodingCheck(Check):
    name = "exploding"

    def on_loader_pass_end(self, event):
        raise RuntimeError("bug inside a check")


def test_a_failing_check_is_disabled_and_reported_while_training_goes_on(report_dir, monkeypatch):
    from watchdog.core import registry

    checks = registry.all_checks()
    monkeypatch.setattr(registry, "all_checks", lambda: [ExplodingCheck, *checks])
    ds = make_dataset(200)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        train_loader = loader(ds)
        fit(make_model(), train_loader, train_loader, epochs=2)
    by_code = {f.code: f for f in run.findings}
    internal = by_code["watchdog/internal-error"]
    assert internal.severity == "warning" and internal.evidence["component"] == "check:exploding"
    assert internal.evidence["exception"] == "RuntimeError"
    assert "overlap/same-loader" in by_code  # the other checks kept working
    assert run.loop.steps == 2 * 7


class BrokenProbe:
    name = "broken"

    def install(self, run):
        raise RuntimeError("cannot install")


def test_a_failed_install_undoes_itself_and_the_loop_runs_unwatched(report_dir, monkeypatch):
    from watchdog.core import registry

    probes = registry.all_probes()
    monkeypatch.setattr(registry, "all_probes", lambda: [*probes, BrokenProbe])
    before = torch_patch_points()
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        assert torch_patch_points()[:4] == before[:4]
        train_epoch(make_model(), loader(make_dataset(64)), torch.optim.SGD(make_model().parameters(), lr=0.1))
    assert [f.evidence["component"] for f in run.findings] == ["probe:broken"]
    assert_no_patches(before)


@pytest.mark.parametrize("kwargs, message", [
    (dict(strict="sometimes"), "strict='sometimes'"),
    (dict(report_dir=42), "report_dir=42"),
    (dict(eval_every=0), "eval_every=0"),
    (dict(colour=True), "unknown option(s) colour"),
])
def test_bad_options_get_a_clear_message(kwargs, message):
    with pytest.raises(watchdog.WatchdogUsageError) as raised:
        watchdog.watch(**kwargs)
    assert message in str(raised.value)


def test_an_uncreatable_report_dir_runs_the_loop_unwatched_with_a_clear_message(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with watchdog.watch(report_dir=blocker / "sub") as run:
        ran = True
    assert ran and run.status == "unwatched"
    err = capsys.readouterr().err
    assert "cannot create the report directory" in err and "Traceback" not in err


def test_a_later_run_never_overwrites_an_earlier_report(report_dir):
    with watchdog.watch(report_dir=report_dir, summary=False) as first:
        pass
    with watchdog.watch(report_dir=report_dir, summary=False) as second:
        pass
    archived = report_dir / "previous" / first.run_id
    assert json.loads((archived / "report.json").read_text())["run"]["run_id"] == first.run_id
    assert json.loads((report_dir / "report.json").read_text())["run"]["run_id"] == second.run_id


def test_event_log_is_flushed_while_the_run_goes(report_dir):
    ds = make_dataset(100)
    with watchdog.watch(report_dir=report_dir, summary=False):
        train_epoch(make_model(), loader(ds), torch.optim.SGD(make_model().parameters(), lr=0.1))
        kinds = [json.loads(line)["kind"] for line in (report_dir / "events.jsonl").read_text().splitlines()]
        assert kinds[0] == "run_start" and "loader_pass_end" in kinds and "epoch_end" in kinds


def test_argv_secrets_are_redacted_in_the_report(report_dir, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py", "--lr", "3e-4", "--wandb-api-key", "abc123", "--token=xyz"])
    with watchdog.watch(report_dir=report_dir, summary=False):
        pass
    report = json.loads((report_dir / "report.json").read_text())
    assert report["run"]["argv"] == ["train.py", "--lr", "3e-4", "--wandb-api-key", "<redacted>", "--token=<redacted>"]
    for key in ("python", "torch", "started_at", "ended_at", "devices", "epochs", "steps"):
        assert key in report["run"]


KILLED_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    import torch
    sys.path.insert(0, {root!r})
    import watchdog
    from tests.loops import loader, make_dataset, make_model, train_epoch
    ds = make_dataset(200)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watchdog.watch(report_dir=sys.argv[1], summary=False):
        train_epoch(model, loader(ds, num_workers=2), optimizer)
        train_epoch(model, loader(ds, num_workers=2), optimizer)
        print("trained", flush=True)
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))
        time.sleep(30)
""")


@pytest.mark.parametrize("signame, status", [("SIGTERM", "terminated"), ("SIGKILL", "incomplete")])
def test_a_killed_run_still_leaves_its_report(tmp_path, signame, status):
    script = tmp_path / "killed.py"
    script.write_text(KILLED_SCRIPT.format(root=ROOT))
    out = tmp_path / "wd"
    proc = subprocess.run([sys.executable, str(script), str(out), signame], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -getattr(signal, signame), proc.stderr
    assert "trained" in proc.stdout
    if signame == "SIGKILL":  # nothing ran at exit: re-render from the flushed event log
        assert not (out / "report.json").exists()
        cli = subprocess.run([sys.executable, "-m", "watchdog", "report", str(out)], capture_output=True,
                             text=True, cwd=ROOT, timeout=120)
        assert cli.returncode == 0, cli.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["status"] == status
    assert report["summary"]["epochs"] == 2 or len(report["epochs"]) == 2


def test_a_broken_dataloader_probe_is_switched_off_once(report_dir, monkeypatch):
    from watchdog.core import loaders as probe_module

    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("frame scan exploded")

    monkeypatch.setattr(probe_module, "user_frames", broken)
    ds = make_dataset(100)
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        model = make_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            train_epoch(model, loader(ds), optimizer)
    assert len(calls) == 1  # switched off after the first failure
    assert [f.evidence["component"] for f in run.findings] == ["probe:dataloader"]
    assert run.loop.steps == 3 * 4


def test_torchrun_ranks_write_separate_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False):
        pass
    assert (tmp_path / "wd" / "rank1" / "report.json").exists()


@pytest.mark.parametrize("make", [make_model, OwnState], ids=["Sequential", "own __getstate__"])
def test_watched_models_stay_picklable_and_load_without_watchdog(report_dir, tmp_path, make):
    import copy

    model = make()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "whole.pt"
    with watchdog.watch(report_dir=report_dir, summary=False) as run:
        train_epoch(model, loader(make_dataset(64)), optimizer)
        assert id(model) in run.loop.models  # hooked
        ema = copy.deepcopy(model)
        torch.save(model, path)
    assert not any("watchdog" in type(h).__module__ for h in ema._forward_pre_hooks.values())
    script = ("import sys, torch; sys.modules['watchdog'] = None; "  # any import of watchdog now fails
              f"m = torch.load({str(path)!r}, weights_only=False); print(m(torch.zeros(1, 8)).shape); "
              "print(sys.modules['watchdog'] is None)")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["torch.Size([1,", "2])", "True"]


def test_name_lookups_keep_no_stale_locals_alive_and_respect_held_locals(report_dir):
    import gc
    import weakref

    ds = make_dataset(64)

    def loop_with_deleted_tensor():
        model = make_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        big = torch.zeros(1000)
        ref = weakref.ref(big)
        train_epoch(model, loader(ds), optimizer)  # a pass starts: names are looked up in this frame
        del big
        gc.collect()
        return ref() is None

    def loop_holding_locals():
        params = locals()  # in Python 3.11, the very dict f_locals returns
        lr = 0.1
        model = make_model()
        train_epoch(model, loader(ds), torch.optim.SGD(model.parameters(), lr=lr))
        return dict(params)

    with watchdog.watch(report_dir=report_dir, summary=False):
        assert loop_with_deleted_tensor()
        held = loop_holding_locals()
    assert "params" in held


def test_a_log_torn_mid_character_still_renders(report_dir):
    from watchdog.core.events import read_events
    from watchdog.report.jsonreport import build_report

    with watchdog.watch(report_dir=report_dir, summary=False):
        train_epoch(make_model(), loader(make_dataset(64)), torch.optim.SGD(make_model().parameters(), lr=0.1))
    log = report_dir / "events.jsonl"
    raw = log.read_bytes()
    log.write_bytes(raw + '{"kind": "finding", "data": {"message": "caf'.encode() + "é".encode()[:1])
    bad = []
    events = list(read_events(log, on_bad_line=lambda: bad.append(1)))
    assert bad == [1] and events[0].kind == "run_start"
    assert build_report(events)["run"]["status"] == "ok"
