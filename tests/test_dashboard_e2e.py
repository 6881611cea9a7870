"""Issue 6 end to end: a real watched loop with the dashboard (live and fallback), the HTML report
next to report.json, and `watchdog report DIR` on a finished and on a crashed run."""
from __future__ import annotations

import json
import logging
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import threading
import weakref

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset, random_split

import watchdog
import watchdog.report.dashboard as dashboard_mod
from test_dashboard_html import parse
from watchdog.report.dashboard import FrozenFrame

REPO = pathlib.Path(__file__).resolve().parents[1]


def loop(epochs=3, leak_val=True, fail_at=None, say=None):
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(256, 8, generator=g), torch.randint(0, 2, (256,), generator=g))
    train_ds, val_ds = random_split(ds, [200, 56], generator=torch.Generator().manual_seed(0))
    train_loader = DataLoader(ds if leak_val else train_ds, batch_size=32, shuffle=False)
    val_loader = DataLoader(val_ds, batch_size=64)
    model = torch.nn.Linear(8, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        if fail_at == epoch:
            raise ValueError("user bug at epoch %d" % epoch)
        model.eval()
        with torch.no_grad():
            for x, _ in val_loader:
                model(x)
        if say is not None:
            say(epoch)


def dashboard_threads():
    return [t for t in threading.enumerate() if t.name == "watchdog-dashboard" and t.is_alive()]


def test_not_a_terminal_gives_one_line_per_epoch_and_an_html_report(tmp_path, capsys):
    with watchdog.watch(report_dir=tmp_path, summary=False) as run:
        loop(epochs=3)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("[watchdog] epoch")]
    assert [ln.split(" · ")[0] for ln in lines] == ["[watchdog] epoch 0 ended", "[watchdog] epoch 1 ended",
                                                         "[watchdog] epoch 2 ended"]
    assert all("eval passes 1" in ln for ln in lines)
    assert "findings 1E" in lines[-1]
    assert [f.code for f in run.findings] == ["overlap/train-eval"]
    page = tmp_path / "report.html"
    assert page.is_file() and (tmp_path / "report.json").is_file()
    tree = parse(page.read_text(encoding="utf-8"))
    text = " ".join(tree.text)
    assert "overlap/train-eval" in text and "Validation overlaps training" in text
    assert len(tree.find("div", **{"data-chart": "cadence"})) == 1
    assert len(tree.find("div", **{"data-chart": "overlap"})) == 1
    assert "0 of 3 epochs" not in text and "had no evaluation pass" not in text


def test_dashboard_false_prints_nothing(tmp_path, capsys):
    with watchdog.watch(report_dir=tmp_path, summary=False, dashboard=False):
        loop(epochs=2, leak_val=False)
    assert "[watchdog] epoch" not in capsys.readouterr().err
    assert (tmp_path / "report.html").is_file()


def test_live_dashboard_in_a_real_run_with_prints_logging_and_an_exception(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dashboard_mod, "display_mode", lambda stdout=None: "live")
    logger = logging.getLogger("watchdog-e2e-user")
    logger.propagate = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    real_stdout = sys.stdout
    seen = {}

    def say(epoch):
        print(f"user print {epoch}")
        logger.info("user log %d", epoch)
        probe = [p for p in watchdog.current_run().probes if p.name == "presentation"]
        seen["probe"] = bool(probe)
        seen["proxied"] = sys.stdout is not real_stdout and handler.stream is sys.stdout

    try:
        with pytest.raises(ValueError, match="user bug at epoch 2"):
            with watchdog.watch(report_dir=tmp_path, summary=False) as run:
                loop(epochs=4, fail_at=2, say=say)
    finally:
        logger.removeHandler(handler)
    assert seen == {"probe": True, "proxied": True}
    assert sys.stdout is real_stdout and handler.stream is real_stdout
    assert not dashboard_threads()
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", capsys.readouterr().out)
    for e in (0, 1):
        assert f"user print {e}\n" in out and f"LOG user log {e}\n" in out
    assert "watchdog · run ended by an exception" in out and f"run {run.run_id}" in out and "overlap/train-eval" in out
    assert not [f for f in run.findings if f.code == "watchdog/internal-error"]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "exception" in html


def test_live_view_follows_the_open_pass_of_a_real_loop(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dashboard_mod, "display_mode", lambda stdout=None: "live")
    ds = TensorDataset(torch.randn(96, 4), torch.randint(0, 2, (96,)))
    train_loader = DataLoader(ds, batch_size=16)
    val_loader = DataLoader(TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,))), batch_size=16)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    original_backward = torch.autograd.backward
    with watchdog.watch(report_dir=tmp_path, summary=False) as run:
        (probe,) = [p for p in run.probes if p.name == "presentation"]
        dash = probe.dashboard
        for epoch in range(2):
            for i, (x, y) in enumerate(train_loader):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                if epoch == 1 and i == 2:
                    dash.tick()
                    v = dash.view
                    seen.append((v.phase, v.current_batches, v.current_total, v.epochs, v.steps))
                    assert v.loss == loss.item() and v.loss_note is None  # a CPU loss: read
                    seen.append(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", "".join(
                        seg.text for line in dash._frame().lines for seg in line)))
            with torch.no_grad():
                for j, (x, _) in enumerate(val_loader):
                    model(x)
                    if epoch == 1 and j == 1:
                        dash.tick()
                        seen.append((dash.view.phase, dash.view.current_batches, dash.view.current_total))
        # A loss on an accelerator is never read (no device wait): the dashboard says so.
        meta_loss = torch.empty((), device="meta")
        dash.loss_ref[0] = weakref.ref(meta_loss)
        dash.tick()
        assert dash.view.loss is None and dash.view.loss_note == "on meta: not read, no sync"
    assert torch.autograd.backward is original_backward   # the loss watch was undone
    assert seen[0] == ("train", 3, 6, 1, 9)
    assert "train pass" in seen[1] and "3/6 batches" in seen[1] and "epochs done 1" in seen[1]
    assert "loss " in seen[1]
    assert seen[2] == ("eval", 2, 4)
    assert dash.view.status == "ok" and dash.view.epochs == 2


def test_ctrl_c_stops_the_dashboard_thread(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dashboard_mod, "display_mode", lambda stdout=None: "live")
    real_stdout = sys.stdout

    def interrupt(epoch):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with watchdog.watch(report_dir=tmp_path, summary=False):
            loop(epochs=3, say=interrupt)
    assert sys.stdout is real_stdout and not dashboard_threads()
    assert json.loads((tmp_path / "report.json").read_text())["run"]["status"] == "interrupted"


def test_frames_are_rendered_off_the_training_thread(monkeypatch):
    class Run:
        steps = epoch = 0
        loop = property(lambda self: self)

        def all_open_passes(self):
            return []

    import io
    from rich.console import Console

    d = dashboard_mod.Dashboard(Run(), mode="live", console=Console(file=io.StringIO(), width=100,
                                                                    force_terminal=True))
    d.start()
    try:
        d.tick()
        # What rich redraws when the user prints is a pre-rendered frame, not the table layout.
        assert isinstance(d._live.get_renderable(), FrozenFrame)
    finally:
        d.stop()


CRASHING = textwrap.dedent("""
    import os, sys, torch
    from torch.utils.data import DataLoader, TensorDataset
    ds = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    loader = DataLoader(ds, batch_size=16)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(3):
        for x, y in loader:
            opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
        with torch.no_grad():
            for x, y in loader:
                model(x)
        print("epoch", epoch, "done", flush=True)
        if epoch == 1:
            os._exit(3)   # dies like an OOM kill: no run_end, no report written at exit
""")


def test_watchdog_report_rerenders_a_crashed_run(tmp_path, capsys):
    from watchdog.cli import main

    script = tmp_path / "crash.py"
    script.write_text(CRASHING)
    out_dir = tmp_path / "wd"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", str(out_dir), str(script)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 3, p.stderr
    assert (out_dir / "events.jsonl").is_file() and not (out_dir / "report.html").exists()
    assert main(["report", str(out_dir)]) == 0                  # `watchdog report DIR`
    err = capsys.readouterr().err
    assert "watchdog:" in err and "report.html" in err
    tree = parse((out_dir / "report.html").read_text(encoding="utf-8"))
    text = " ".join(tree.text)
    assert "incomplete" in text and "overlap/same-loader" in text
    assert json.loads((out_dir / "report.json").read_text())["run"]["status"] == "incomplete"
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no event log" in err and "Traceback" not in err


def _last_frame_headline(out: str) -> str:
    """The headline of the dashboard's last frame (the top border's title)."""
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    return re.findall(r"╭─ (watchdog · [^─]*?) ─", out)[-1]


def test_the_live_dashboards_last_frame_holds_the_findings_made_at_the_runs_end(tmp_path, monkeypatch, capsys):
    # Field run (pytorch/examples mnist, `--save-model`: the weights alone saved after training):
    # checkpoint/weights-only is decided when the checks finish, and the last frame said "run
    # completed · no findings" right above the summary's "0 errors · 0 warnings · 1 info".
    monkeypatch.setattr(dashboard_mod, "display_mode", lambda stdout=None: "live")
    g = torch.Generator().manual_seed(0)
    train_loader = DataLoader(TensorDataset(torch.randn(64, 8, generator=g), torch.randint(0, 2, (64,), generator=g)),
                              batch_size=16)
    val_loader = DataLoader(TensorDataset(torch.randn(32, 8, generator=g), torch.randint(0, 2, (32,), generator=g)),
                            batch_size=16)
    model = torch.nn.Linear(8, 2)
    opt = torch.optim.Adadelta(model.parameters())
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False) as run:
        for epoch in range(2):
            for x, y in train_loader:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            with torch.no_grad():
                for x, _ in val_loader:
                    model(x)
        torch.save(model.state_dict(), tmp_path / "model.pt")   # the example's save: the weights only
    assert [(f.code, f.severity) for f in run.findings] == [("checkpoint/weights-only", "info")]
    assert _last_frame_headline(capsys.readouterr().out) == "watchdog · run completed · 0 errors · 0 warnings · 1 info"
    assert sys.stdout.__class__ is not dashboard_mod.FileProxy and not dashboard_threads()


def test_the_live_dashboards_last_frame_says_no_findings_when_the_checks_finish_with_none(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dashboard_mod, "display_mode", lambda stdout=None: "live")
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False) as run:
        loop(epochs=2, leak_val=False)
    assert run.findings == []
    assert _last_frame_headline(capsys.readouterr().out) == "watchdog · run completed · no findings"
