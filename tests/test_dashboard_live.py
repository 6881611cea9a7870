"""Issue 6: the live dashboard (Live, its thread, stdout/logging) and its non-terminal fallback.

The event streams are the examples' real runs, recorded by tests/fixtures/record.py."""
from __future__ import annotations

import io
import logging
import os
import pathlib
import re
import select
import subprocess
import sys
import textwrap
import threading
import time
import types

import pytest
from rich.console import Console

import watchdog.report.dashboard as dashboard_mod
from fixtures import fixture_events
from watchdog.core.format import fmt_bytes
from watchdog.report.dashboard import Dashboard, display_mode, rank_mode

REPO = pathlib.Path(__file__).resolve().parents[1]


class Counters:
    """Stands in for a Run and its loop state: the dashboard reads `loop.steps`, `loop.epoch` and the open passes."""

    def __init__(self):
        self.steps = 0
        self.epoch = 0
        self.errors = []
        self.loop = self

    def all_open_passes(self):
        return []

    def internal_error(self, component, exc):
        self.errors.append((component, exc))


class Tty(io.StringIO):
    def isatty(self):
        return True


def capture_console(width=100, height=40):
    return Console(file=io.StringIO(), width=width, height=height, force_terminal=True, color_system=None,
                   legacy_windows=False)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# ---------------------------------------------------------------------- mode decision
def test_mode_follows_isatty_not_rich_color_detection(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert display_mode(io.StringIO()) == "lines"
    assert display_mode(Tty()) == "live"
    with open(os.devnull, "w") as fh:
        assert display_mode(fh) == "lines"


def test_jupyter_without_ipywidgets_steps_aside(monkeypatch):
    class ZMQInteractiveShell:
        pass

    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: ZMQInteractiveShell()
    monkeypatch.setitem(sys.modules, "IPython", fake)
    monkeypatch.setattr(dashboard_mod, "_has_ipywidgets", lambda: False)
    assert display_mode(Tty()) == "lines"
    monkeypatch.setattr(dashboard_mod, "_has_ipywidgets", lambda: True)
    assert display_mode(io.StringIO()) == "jupyter"


def test_only_local_rank_0_of_node_0_shows_a_dashboard_as_its_start_metadata_says(monkeypatch):
    """Which rank draws comes from the run's start metadata (RankInfo as logged), not the environment:
    the environment here says rank 0 of nothing, and only the metadata decides."""
    from watchdog.core.ranks import RankInfo

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)

    def rank_run(rank, local_rank, node_rank, rank_lines=False):
        info = RankInfo.from_env({"RANK": str(rank), "WORLD_SIZE": "4", "LOCAL_RANK": str(local_rank),
                                  "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": str(node_rank)})

        class Run:
            start_metadata = {"rank": info.to_dict(), "rank_lines": rank_lines}

            class options:
                dashboard = None

        return Run()

    assert rank_mode(rank_run(0, 0, 0)) is None  # the terminal decides: live, jupyter or lines
    assert Dashboard(rank_run(0, 0, 0), line_stream=io.StringIO()).mode == display_mode()
    assert rank_mode(rank_run(1, 1, 0)) == "off"
    assert rank_mode(rank_run(2, 0, 1)) == "off"  # local rank 0 of another node: its own terminal is a log
    assert Dashboard.for_run(rank_run(1, 1, 0)) is None
    assert rank_mode(rank_run(1, 1, 0, rank_lines=True)) == "lines"
    assert Dashboard.for_run(rank_run(3, 1, 1, rank_lines=True)).mode == "lines"

    class OneProcess:
        start_metadata = {"rank": None}

    assert rank_mode(OneProcess()) is None


def test_refresh_rate_is_capped_at_2_hz():
    assert Dashboard(mode="lines", refresh_hz=10).refresh_hz == 2.0
    assert Dashboard(mode="lines").refresh_hz == 1.0


# ---------------------------------------------------------------------- fallback
def test_fallback_prints_one_line_per_epoch_including_its_evaluation():
    events = fixture_events("eval_cadence_every2")   # 6 epochs, evaluated after every 2nd
    out = io.StringIO()
    d = Dashboard(Counters(), mode="lines", line_stream=out)
    d.start()
    for ev in events:
        d.on_event(ev)
    d.stop()
    lines = out.getvalue().splitlines()
    assert len(lines) == 6
    assert [ln.split(" · ")[0] for ln in lines] == [f"[watchdog] epoch {e} ended" for e in range(6)]
    assert ["eval passes 1" in ln for ln in lines] == [False, True, False, True, False, True]
    epoch_2 = next(e["data"] for e in events if e["kind"] == "memory_sample" and e["data"]["at"] == "epoch_end"
                   and e["data"]["epoch"] == 2)
    assert f"process RSS {fmt_bytes(epoch_2['rss'])}" in lines[1]
    assert d._thread is None  # no thread, no Live in the fallback


def test_fallback_flushes_the_last_epoch_when_the_run_dies_without_run_end():
    events = fixture_events("overlap_bug")
    assert events[-1]["kind"] == "run_end"
    out = io.StringIO()
    d = Dashboard(mode="lines", line_stream=out)
    d.start()
    for ev in events[:-1]:
        d.on_event(ev)
    d.stop()
    assert len(out.getvalue().splitlines()) == 3


# ---------------------------------------------------------------------- live
def test_live_prints_and_logging_go_above_the_dashboard_and_are_restored():
    run = Counters()
    console = capture_console()
    logger = logging.getLogger("watchdog-test-user")
    logger.propagate = False
    handler = logging.StreamHandler(sys.stdout)   # created before the dashboard: holds the real stdout
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    real_stdout = sys.stdout
    try:
        d = Dashboard(run, mode="live", console=console, refresh_hz=2)
        d.start()
        assert sys.stdout is not real_stdout and handler.stream is sys.stdout
        for ev in fixture_events("overlap_bug"):    # 3 epochs, 75 steps
            d.on_event(ev)
        run.steps = 75
        print("user print line")
        logger.info("user log line")
        d.tick()
        d.stop()
        assert sys.stdout is real_stdout and handler.stream is real_stdout
        d.stop()  # idempotent
    finally:
        logger.removeHandler(handler)
    text = console.file.getvalue()
    assert "user print line\n" in text and "LOG user log line\n" in text
    assert "user print line" not in text.split("memory per epoch")[-1]  # printed above, not inside
    last = text.split("watchdog · run")[-1]
    assert "epochs done 3" in last and "steps 75" in last and "phase done" in last
    assert not run.errors


def test_live_refresh_thread_draws_and_stops():
    run = Counters()
    d = Dashboard(run, mode="live", console=capture_console(), refresh_hz=2)
    d.start()
    try:
        d.on_event(fixture_events("overlap_bug")[0])
        run.steps = 7
        assert wait_for(lambda: d.frames >= 1)
    finally:
        d.stop()
    assert not d._thread.is_alive()
    assert "steps 7" in d._console.file.getvalue()
    assert not [t for t in threading.enumerate() if t.name == "watchdog-dashboard"]


def test_an_error_in_the_dashboard_thread_never_reaches_the_loop():
    class Broken(Counters):
        @property
        def steps(self):
            raise RuntimeError("boom")

        @steps.setter
        def steps(self, v):
            pass

    run = Broken()
    real_stdout = sys.stdout
    d = Dashboard(run, mode="live", console=capture_console(), refresh_hz=2)
    d.start()
    assert wait_for(lambda: run.errors)
    d.on_event(fixture_events("overlap_bug")[0])  # the listener still returns normally
    d.stop()
    assert sys.stdout is real_stdout
    assert run.errors[0][0] == "dashboard" and isinstance(run.errors[0][1], RuntimeError)


# ---------------------------------------------------------------------- real processes
SCRIPT = textwrap.dedent("""
    import logging, sys, time
    sys.path.insert(0, {repo!r})
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="LOG %(message)s")
    from watchdog.report.dashboard import Dashboard
    sys.path.insert(0, {tests!r})
    from fixtures import fixture_events
    class Run:
        steps = 0; epoch = 0
        loop = property(lambda self: self)
        def all_open_passes(self): return []
    run = Run()
    d = Dashboard(run, refresh_hz=2)
    print("MODE", d.mode)
    d.start()
    for ev in fixture_events("overlap_bug"):
        d.on_event(ev)
        if ev["kind"] == "epoch_end":
            run.steps = ev["data"]["steps"]
            print("user print", ev["data"]["epochs_completed"])
            logging.getLogger("u").info("user log %d", ev["data"]["epochs_completed"])
            d.tick()
    d.stop()
    print("DONE frames", d.frames)
""")


def _script(tmp_path):
    path = tmp_path / "dash.py"
    path.write_text(SCRIPT.format(repo=str(REPO), tests=str(REPO / "tests")))
    return path


def test_not_a_terminal_even_with_force_color_gives_lines_not_frames(tmp_path):
    env = dict(os.environ, FORCE_COLOR="1")
    p = subprocess.run([sys.executable, str(_script(tmp_path))], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "MODE lines" in p.stdout and "\x1b[" not in p.stdout and "╭" not in p.stdout
    assert p.stdout.count("user print") == 3
    assert len([ln for ln in p.stderr.splitlines() if ln.startswith("[watchdog] epoch")]) == 3


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_in_a_real_terminal_prints_and_logs_stay_intact(tmp_path):
    master, slave = os.openpty()
    env = dict(os.environ, COLUMNS="120", LINES="40")
    env.pop("FORCE_COLOR", None)
    proc = subprocess.Popen([sys.executable, str(_script(tmp_path))], stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    os.close(master)
    out = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, out
    assert "MODE live" in out
    for e in (1, 2, 3):
        assert f"user print {e}\r\n" in out and f"LOG user log {e}\r\n" in out
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert "╭─ watchdog" in plain and "DONE frames" in plain


def test_fallback_with_mark_epoch_prints_each_epoch_when_its_memory_sample_arrives():
    out = io.StringIO()
    d = Dashboard(mode="lines", line_stream=out)
    d.start()
    d.on_event({"kind": "run_start", "t": 0.0, "data": {}})
    for e in range(3):
        d.on_event({"kind": "epoch_end", "t": 1.0 + e, "data": {"epoch": e, "epochs_completed": e + 1,
                                                                "steps": 10 * (e + 1), "source": "mark"}})
        assert len(out.getvalue().splitlines()) == e   # waits for the memory sample
        d.on_event({"kind": "memory_sample", "t": 1.0 + e, "data": {"at": "epoch_end", "epoch": e + 1,
                                                                    "rss": 1e8 * (e + 1)}})
        assert len(out.getvalue().splitlines()) == e + 1
    d.stop()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "process RSS 286 MiB" in lines[-1]


def test_user_output_is_printed_verbatim_and_a_progress_bar_line_once():
    out = io.StringIO()
    # The console the dashboard makes for itself (not a capture console): markup, emoji and
    # highlighting off, so the user's text comes out as written.
    d = Dashboard(Counters(), mode="live", refresh_hz=2)
    real = sys.stdout
    sys.stdout = Tty()
    try:
        d.start()
        print("[red]not markup[/red] :smile: 12.5 it/s")
        long_line = "https://example.org/runs/" + "x" * 150 + "?step=1"  # wider than the 80-column console
        print(long_line)
        for i in range(1, 4):
            sys.stdout.write(f"\rprogress {i}/3")
            sys.stdout.flush()
        assert sys.stdout.pending == "progress 3/3"
        d.tick()                                   # the pending bar is drawn under the panel
        sys.stdout.write("\n")
        assert sys.stdout.pending == ""
        d.stop()
        out = d._console.file.getvalue()
    finally:
        sys.stdout = real
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert "[red]not markup[/red] :smile: 12.5 it/s\n" in plain
    assert "\x1b[1;36m12.5" not in out              # no number highlighting of user text
    assert long_line + "\n" in plain                # as written: no hard wrap, copies out whole
    printed = [ln for ln in plain.splitlines() if ln.startswith("progress")]
    assert set(printed) == {"progress 3/3"}        # drawn under the panel, then printed when done
    assert "progress 3/3" not in plain.split("╭")[-1]  # the final frame no longer holds it


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_worker_writes_to_the_real_streams_not_the_dashboard():
    """A DataLoader worker forked while the dashboard draws must not print through rich's
    proxies: a console lock held by the parent's drawing thread at the fork would never be freed."""
    real_stdout = sys.stdout
    logger = logging.getLogger("watchdog-test-fork")
    handler = logging.StreamHandler(sys.stdout)
    logger.addHandler(handler)
    d = Dashboard(Counters(), mode="live", console=capture_console(), refresh_hz=2)
    d.start()
    try:
        assert isinstance(sys.stdout, dashboard_mod.FileProxy)
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            ok = sys.stdout is real_stdout and handler.stream is real_stdout and d._stopped
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert isinstance(sys.stdout, dashboard_mod.FileProxy) and not d._stopped  # parent untouched
    finally:
        d.stop()
        logger.removeHandler(handler)
    assert sys.stdout is real_stdout
