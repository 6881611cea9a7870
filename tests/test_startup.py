"""Start-up stays cheap (issue 13 item 7, issue 14 item 5).

`watchdog --help`, `--version`, usage errors and `watchdog report DIR` never import torch; a run
imports rich, the dashboard and the report modules only when it uses them, and importing rich
never draws from the user's `random` stream. Checked through `sys.modules` in fresh interpreters,
never by timing.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT}
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "overlap_bug.events.jsonl")


def _modules_after(code: str, cwd) -> dict:
    """Run ``code`` in a fresh interpreter; it must leave its verdict as JSON on the last stdout line."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


CLI_MAIN = """
    import json, sys
    from watchdog.cli import main
    try:
        status = main({argv!r})
    except SystemExit as exc:
        status = exc.code
    loaded = lambda prefix: sorted(m for m in sys.modules if m == prefix or m.startswith(prefix + "."))
    print(json.dumps({{"status": status, "torch": loaded("torch"), "rich": loaded("rich")}}))
"""


@pytest.mark.parametrize("argv, status", [
    (["--help"], 0),
    (["--version"], 0),
    (["run", "--help"], 0),
    ([], 2),
    (["run", "--fail-on", "bogus", "x.py"], 2),
    (["run"], 2),
    (["frobnicate"], 2),
])
def test_help_version_and_usage_errors_never_import_torch(tmp_path, argv, status):
    seen = _modules_after(CLI_MAIN.format(argv=argv), tmp_path)
    assert seen["status"] == status
    assert seen["torch"] == [] and seen["rich"] == []


def test_a_refused_script_never_imports_torch(tmp_path):
    (tmp_path / "bad.py").write_text("x = (\n")
    seen = _modules_after(CLI_MAIN.format(argv=["run", "bad.py"]), tmp_path)
    assert seen["status"] == 1 and seen["torch"] == []


def test_watchdog_report_never_imports_torch(tmp_path):
    (tmp_path / "wd").mkdir()
    shutil.copy(FIXTURE, tmp_path / "wd" / "events.jsonl")
    seen = _modules_after(CLI_MAIN.format(argv=["report", "wd"]), tmp_path)
    assert seen["status"] == 0 and seen["torch"] == []
    assert (tmp_path / "wd" / "report.html").is_file()


def test_import_watchdog_is_lazy_and_every_public_name_works(tmp_path):
    seen = _modules_after("""
        import json, sys
        import watchdog
        before = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "rich", "numpy"))
        names = ["watch", "Finding", "loader_role", "mark_epoch", "current_run", "Run", "WatchOptions",
                 "WatchdogStop", "WatchdogUsageError", "__version__"]
        from watchdog import watch, WatchdogStop
        values = {name: getattr(watchdog, name) for name in names}
        ok = (values["watch"] is watch and values["WatchdogStop"] is WatchdogStop
              and issubclass(values["WatchdogUsageError"], ValueError) and isinstance(values["__version__"], str)
              and values["current_run"]() is None and set(names) <= set(dir(watchdog))
              and set(names) <= set(watchdog.__all__))
        try:
            watchdog.no_such_name
            missing = "no error"
        except AttributeError as exc:
            missing = str(exc)
        print(json.dumps({"before": before, "ok": ok, "missing": missing}))
    """, tmp_path)
    assert seen["before"] == [] and seen["ok"]
    assert "no_such_name" in seen["missing"]


RUN = """
    import json, random, sys
    random.seed(1234)
    import watchdog
    from tests.loops import fit, loader, make_dataset, make_model
    with watchdog.watch(report_dir="wd", dashboard={dashboard}, summary={summary}) as run:
        ds = make_dataset(64)
        fit(make_model(), loader(ds), loader(make_dataset(32, seed=1)), epochs=1)
    loaded = lambda prefix: prefix in sys.modules
    print(json.dumps({{"dashboard": loaded("watchdog.report.dashboard"), "live": loaded("rich.live"),
                      "rich": loaded("rich"), "draw": random.random(), "status": run.status}}))
"""


def test_a_run_without_dashboard_or_summary_never_loads_them(tmp_path):
    seen = _modules_after(RUN.format(dashboard=False, summary=False), tmp_path)
    assert seen["status"] == "ok"
    assert not seen["dashboard"] and not seen["live"]
    assert not seen["rich"]  # the HTML report and report.json are written without it
    assert (tmp_path / "wd" / "report.html").is_file()
    assert seen["draw"] == random.Random(1234).random()


@pytest.mark.parametrize("dashboard", [None, False])
def test_loading_rich_mid_run_draws_nothing_from_random(tmp_path, dashboard):
    seen = _modules_after(RUN.format(dashboard=dashboard, summary=True), tmp_path)
    assert seen["status"] == "ok" and seen["rich"]  # rich was loaded during the run...
    assert seen["draw"] == random.Random(1234).random()  # ...and the user's stream is untouched


# What a run needs only later: the views and the report's folding and charts (at the report, or
# when the dashboard starts), the holders walk and the census (at a first growth, a first census),
# the merge (a rank of a torchrun job, at its end), Jinja2 (the HTML page), statistics.
LATER = ["watchdog.report.fold", "watchdog.report.svg", "watchdog.report.markup", "watchdog.overlap.view",
         "watchdog.checkpoint.view", "watchdog.evaluation.view", "watchdog.memory.view", "watchdog.distributed.view",
         "watchdog.memory.holders", "watchdog.memory.census", "watchdog.memory.graphs", "watchdog.distributed.finish",
         "watchdog.distributed.merge", "watchdog.distributed.job", "watchdog.distributed.checkpoints",
         "watchdog.distributed.unsharded", "jinja2", "rich", "statistics", "secrets"]

START = """
    import gc, json, sys
    import torch
    import watchdog
    watch = watchdog.watch  # imports the session (watchdog.core.run)
    {before}
    full = gc.get_stats()[2]["collections"]
    block = watch(report_dir="wd", dashboard=False, summary=False)
    run = block.__enter__()
    at_start = {{"full": gc.get_stats()[2]["collections"] - full, "enabled": gc.isenabled(), "status": run.status,
                "loaded": sorted(m for m in {later!r} if m in sys.modules)}}
    block.__exit__(None, None, None)
    print(json.dumps({{"start": at_start, "enabled": gc.isenabled(),
                      "loaded": sorted(m for m in {later!r} if m in sys.modules)}}))
"""


def test_a_run_start_loads_only_what_the_start_needs(tmp_path):
    seen = _modules_after(START.format(before="", later=LATER), tmp_path)
    assert seen["start"]["status"] == "running"
    assert seen["start"]["loaded"] == []  # none of them after Run.start with dashboard=False
    # The run's end (no finding, one process) renders the page: Jinja2 and the views, nothing else.
    assert seen["loaded"] == sorted(["jinja2", "watchdog.report.fold", "watchdog.report.svg", "watchdog.report.markup",
                                     "watchdog.overlap.view", "watchdog.checkpoint.view", "watchdog.evaluation.view",
                                     "watchdog.memory.view", "watchdog.distributed.view"])
    assert (tmp_path / "wd" / "report.html").is_file()


def test_a_run_start_runs_no_full_collection_and_resumes_the_collector_as_it_was(tmp_path):
    # The collector brought to the edge of a full collection (over torch's heap: 70-110 ms on the CI
    # machine): objects a quarter of the heap, less a few, waiting in the oldest generation, and
    # young collections frequent; without the pause, the start's own objects would set one off.
    edge = ("gc.collect(); keep = [[i] for i in range(len(gc.get_objects()) // 4 - 500)]; gc.collect(1); "
            "gc.set_threshold(100, 2)")
    seen = _modules_after(START.format(before=edge, later=LATER), tmp_path)
    assert seen["start"]["full"] == 0 and seen["start"]["enabled"] and seen["enabled"]
    off = _modules_after(START.format(before="gc.disable()", later=LATER), tmp_path)
    assert not off["start"]["enabled"] and not off["enabled"]  # a program that turned it off keeps it off


def test_watchdog_run_quiet_never_imports_rich(tmp_path):
    (tmp_path / "train.py").write_text("import torch\nprint('trained')\n")
    seen = _modules_after(CLI_MAIN.format(argv=["run", "--quiet", "--no-dashboard", "--report-dir", "wd", "train.py"]),
                          tmp_path)
    assert seen["status"] == 0 and seen["torch"] and seen["rich"] == []
    assert (tmp_path / "wd" / "report.html").is_file()
