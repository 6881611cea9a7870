"""A run's own threads (core/threads.py, ``Run.background``): started without the caller waiting for
them to be scheduled, joined once the run's reports are written; the memory sampler halted at the
probes' finish emits nothing after it; the archived reports pruned on such a thread."""
from __future__ import annotations

import threading
import time

import pytest
import torch

import watchdog
from tests.loops import fit, loader, make_dataset, make_model
from watchdog.core.run import KEEP_PREVIOUS_RUNS
from watchdog.core.threads import BackgroundThread


def _watchdog_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("watchdog") and t.is_alive())


def test_start_returns_while_the_thread_is_still_being_started(monkeypatch):
    """``threading.Thread.start()`` blocks until the new thread runs; here that wait is the helper's:
    with ``Thread.start`` held, ``BackgroundThread.start()`` still returns, and ``join`` waits."""
    release, entered = threading.Event(), threading.Event()
    real_start = threading.Thread.start

    def held_start(self):
        entered.set()
        assert release.wait(10)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", held_start)
    ran = []
    thread = BackgroundThread(lambda: ran.append(threading.current_thread().name), "watchdog-test").start()
    assert entered.wait(10)  # the helper is inside Thread.start, and we are not
    assert thread.is_alive() and thread.join(timeout=0.05) is False and ran == []
    release.set()
    assert thread.join(timeout=10) is True
    assert ran == ["watchdog-test"] and not thread.is_alive()


def test_a_thread_that_cannot_be_started_joins_at_once(monkeypatch):
    def refuse(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    thread = BackgroundThread(lambda: None, "watchdog-test").start()
    assert thread.join(timeout=10) is True
    assert isinstance(thread.start_error, RuntimeError) and not thread.is_alive()


def test_a_background_thread_ends_before_the_run_does(tmp_path):
    done = threading.Event()
    with watchdog.watch(report_dir=tmp_path / "wd", dashboard=False, summary=False) as run:
        run.background(lambda: (time.sleep(0.2), done.set()), "watchdog-test-worker")
    assert done.is_set()  # joined once the reports were written
    assert "watchdog-test-worker" not in _watchdog_threads()


def test_no_memory_sample_after_the_probes_finish(tmp_path, monkeypatch):
    """The sampler samples every 10 ms and each sample's RSS read takes 100 ms: the run ends while
    one is under way. The halt waits for it (under the sampler's lock), so nothing is emitted once
    the memory probe has finished, and the thread is gone when the run is."""
    import watchdog.core.run as run_module
    import watchdog.memory.probe as probe_module
    import watchdog.memory.sources as sources

    monkeypatch.setenv("WATCHDOG_MEMORY_SAMPLE_INTERVAL", "0.01")
    real_read, real_finish, real_emit = sources.RssReader.read, probe_module.MemoryProbe.finish, run_module.Run.emit
    finished = threading.Event()
    sampler_emits: list[bool] = []  # for each sample the thread emitted: whether the probe had finished

    def slow_read(self):
        if threading.current_thread().name == "watchdog-memory-sampler":
            time.sleep(0.1)
        return real_read(self)

    def finish(self):
        real_finish(self)
        finished.set()

    def emit(self, kind, data, refs=None):
        if kind == "memory_sample" and data.get("at") == "sampler":
            sampler_emits.append(finished.is_set())
        return real_emit(self, kind, data, refs)

    monkeypatch.setattr(sources.RssReader, "read", slow_read)
    monkeypatch.setattr(probe_module.MemoryProbe, "finish", finish)
    monkeypatch.setattr(run_module.Run, "emit", emit)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = loader(make_dataset(64), 8)
    with watchdog.watch(report_dir=tmp_path / "wd", dashboard=False, summary=False):
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            for x, y in data:
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
    assert finished.is_set() and sampler_emits, "the sampler never sampled"
    assert not any(sampler_emits)
    assert "watchdog-memory-sampler" not in _watchdog_threads()


@watchdog.watch(dashboard=False, summary=False)
def _decorated_fit():
    fit(make_model(), loader(make_dataset(32)), None, epochs=1)


def test_pruning_is_done_when_each_run_ends(report_dir, monkeypatch):
    """Each run past KEEP_PREVIOUS_RUNS prunes on its own thread; when it returns, the thread is gone
    and previous/ holds exactly KEEP_PREVIOUS_RUNS archived reports."""
    import watchdog.core.run as run_module

    monkeypatch.setenv("WATCHDOG_REPORT_DIR", str(report_dir))
    pruned = []
    real_prune = run_module.prune_previous_reports

    def prune(previous, keep=KEEP_PREVIOUS_RUNS):
        pruned.append(threading.current_thread().name)
        return real_prune(previous, keep)

    monkeypatch.setattr(run_module, "prune_previous_reports", prune)
    for _ in range(KEEP_PREVIOUS_RUNS + 3):
        _decorated_fit()
        assert "watchdog-prune-previous" not in _watchdog_threads()
        assert len(list((report_dir / "previous").iterdir()) if (report_dir / "previous").exists() else []) \
            <= KEEP_PREVIOUS_RUNS
    assert pruned == ["watchdog-prune-previous"] * 2  # only once previous/ held more than it keeps
    assert len(list((report_dir / "previous").iterdir())) == KEEP_PREVIOUS_RUNS


@pytest.mark.parametrize("folders", [KEEP_PREVIOUS_RUNS, KEEP_PREVIOUS_RUNS + 1])
def test_previous_reports_to_prune_counts_folders_only(tmp_path, folders):
    from watchdog.core.run import previous_reports_to_prune

    previous = tmp_path / "previous"
    previous.mkdir()
    for i in range(folders):
        (previous / f"run-{i}").mkdir()
    (previous / "notes.txt").write_text("not a folder")
    (previous / "link").symlink_to(previous / "run-0")
    assert previous_reports_to_prune(previous) is (folders > KEEP_PREVIOUS_RUNS)
    assert previous_reports_to_prune(tmp_path / "missing") is False
