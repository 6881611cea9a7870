"""``watchdog run`` behaves exactly like ``python script.py`` (issue 2)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}

PROBE_SCRIPT = textwrap.dedent("""
    import json, os, sys
    print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "file": __file__, "name": __name__,
                      "main_file": getattr(sys.modules["__main__"], "__file__", None)}))
    mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
    if mode == "exit3":
        sys.exit(3)
    if mode == "exitmsg":
        sys.exit("fatal: bad config")
    if mode == "raise":
        def inner():
            raise ValueError("user error")
        inner()
    if mode == "ctrlc":
        raise KeyboardInterrupt
""")


def run_both(tmp_path, *args):
    sub = tmp_path / "scripts"
    sub.mkdir(exist_ok=True)
    (sub / "probe.py").write_text(PROBE_SCRIPT)
    plain = subprocess.run([sys.executable, "scripts/probe.py", *args], cwd=tmp_path, capture_output=True,
                           text=True, env=ENV, timeout=120)
    watched = subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", str(tmp_path / "wd"),
                              "--quiet", "scripts/probe.py", *args], cwd=tmp_path, capture_output=True,
                             text=True, env=ENV, timeout=120)
    return plain, watched


@pytest.mark.parametrize("args", [(), ("ok", "--lr", "3e-4", "--run-name=x")])
def test_script_sees_the_same_argv_path_file_and_name(tmp_path, args):
    plain, watched = run_both(tmp_path, *args)
    assert plain.returncode == watched.returncode == 0, watched.stderr
    assert json.loads(plain.stdout.splitlines()[0]) == json.loads(watched.stdout.splitlines()[0])


@pytest.mark.parametrize("mode, code", [("exit3", 3), ("exitmsg", 1), ("raise", 1), ("ctrlc", -signal.SIGINT)])
def test_exit_status_and_error_output_match_python(tmp_path, mode, code):
    plain, watched = run_both(tmp_path, mode)
    assert plain.returncode == watched.returncode == code
    if mode == "exitmsg":
        assert "fatal: bad config" in watched.stderr
    if mode in ("raise", "ctrlc"):
        tb_plain = [line for line in plain.stderr.splitlines() if line.startswith(("Traceback", "  File", "ValueError", "KeyboardInterrupt"))]
        tb_watched = [line for line in watched.stderr.splitlines() if line.startswith(("Traceback", "  File", "ValueError", "KeyboardInterrupt"))]
        assert tb_watched == tb_plain  # no watchdog or runpy frames in the user's traceback
    report = json.loads((tmp_path / "wd" / "report.json").read_text())
    assert report["run"]["argv"] == ["scripts/probe.py", mode]


WORKER_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from torch.utils.data import DataLoader, Dataset, Subset

    class Squares(Dataset):  # defined in __main__: workers must be able to find it
        def __len__(self):
            return 200
        def __getitem__(self, i):
            return torch.tensor([float(i)]), i % 2

    if __name__ == "__main__":
        ds = Squares()
        context = sys.argv[1]
        kwargs = dict(num_workers=2, multiprocessing_context=context)
        train_loader = DataLoader(Subset(ds, range(0, 150)), batch_size=10, shuffle=True, **kwargs)
        val_loader = DataLoader(Subset(ds, range(100, 200)), batch_size=10, **kwargs)
        model = torch.nn.Linear(1, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for x, y in train_loader:
            opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
        with torch.no_grad():
            total = sum(float(model(x).sum()) for x, _ in val_loader)
        print("done")
""")


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_script_with_dataloader_workers_and_fail_on(tmp_path, context):
    (tmp_path / "train.py").write_text(WORKER_SCRIPT)
    out = tmp_path / "wd"
    proc = subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", str(out), "--fail-on", "error",
                           "train.py", context], cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 86, proc.stderr
    assert "watchdog stopped the run" in proc.stderr
    report = json.loads((out / "report.json").read_text())
    finding = report["findings"][0]
    assert finding["code"] == "overlap/train-eval" and finding["evidence"]["overlap"] == 50
    assert report["run"]["status"] == "stopped"


def test_fail_on_without_findings_keeps_status_zero(tmp_path):
    (tmp_path / "train.py").write_text(WORKER_SCRIPT.replace("range(100, 200)", "range(150, 200)"))
    proc = subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", str(tmp_path / "wd"),
                           "--fail-on", "warning", "train.py", "fork"], cwd=tmp_path, capture_output=True,
                          text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "done" in proc.stdout and "watchdog: run completed · no findings" in proc.stderr


def test_usage_errors_are_clear_and_not_tracebacks(tmp_path):
    missing = subprocess.run([sys.executable, "-m", "watchdog", "run", "nope.py"], cwd=tmp_path,
                             capture_output=True, text=True, env=ENV, timeout=120)
    assert missing.returncode == 2 and "can't open file" in missing.stderr and "nope.py" in missing.stderr
    assert "Traceback" not in missing.stderr
    report = subprocess.run([sys.executable, "-m", "watchdog", "report", str(tmp_path / "nothing")], cwd=tmp_path,
                            capture_output=True, text=True, env=ENV, timeout=120)
    assert report.returncode == 2 and "no event log" in report.stderr and "Traceback" not in report.stderr


def test_console_script_entry_point_is_declared():
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    assert 'watchdog = "watchdog.cli:main"' in text and 'name = "torch-watchdog"' in text


def _copy_package(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(os.path.join(ROOT, "watchdog"), site / "watchdog",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return site


def test_filesystem_watchdog_overwriting_our_init_is_explained(tmp_path):
    site = _copy_package(tmp_path)
    # What `pip install watchdog` (filesystem events) does to the shared directory.
    (site / "watchdog" / "__init__.py").write_text("# filesystem events package\n")
    (site / "watchdog" / "observers").mkdir()
    (site / "watchdog" / "observers" / "__init__.py").write_text("")
    env = {**ENV, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-m", "watchdog", "run", "x.py"], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "filesystem-events package" in proc.stderr and "pip uninstall" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_our_package_over_the_filesystem_one_warns(tmp_path):
    site = _copy_package(tmp_path)
    (site / "watchdog" / "observers").mkdir()
    env = {**ENV, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-W", "always", "-c", "import watchdog; print(watchdog.watch)"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "RuntimeWarning" in proc.stderr and "filesystem-events" in proc.stderr


def _previous_report(tmp_path):
    """A report directory holding an earlier run's report, as a finished run leaves it."""
    (tmp_path / "earlier.py").write_text("print('earlier')\n")
    subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", str(tmp_path / "wd"), "--quiet",
                    "--no-dashboard", "earlier.py"], cwd=tmp_path, capture_output=True, env=ENV, timeout=120,
                   check=True)
    return {p.relative_to(tmp_path / "wd"): p.read_bytes() for p in sorted((tmp_path / "wd").rglob("*"))
            if p.is_file()}


def test_a_syntax_error_is_python_s_own_and_starts_nothing(tmp_path):
    before = _previous_report(tmp_path)
    (tmp_path / "bad.py").write_text("import os\nx = (\n")
    plain = subprocess.run([sys.executable, "bad.py"], cwd=tmp_path, capture_output=True, text=True, env=ENV,
                           timeout=120)
    watched = subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", str(tmp_path / "wd"),
                              "bad.py"], cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=120)
    assert plain.returncode == watched.returncode == 1
    assert watched.stderr == plain.stderr and "SyntaxError" in watched.stderr
    after = {p.relative_to(tmp_path / "wd"): p.read_bytes() for p in sorted((tmp_path / "wd").rglob("*"))
             if p.is_file()}
    assert after == before  # nothing archived, nothing written


def test_a_missing_script_starts_nothing(tmp_path):
    before = _previous_report(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", str(tmp_path / "wd"),
                           "missing.py"], cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 2 and "can't open file" in proc.stderr and "Traceback" not in proc.stderr
    after = {p.relative_to(tmp_path / "wd"): p.read_bytes() for p in sorted((tmp_path / "wd").rglob("*"))
             if p.is_file()}
    assert after == before


def _watchdog_run(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", str(tmp_path / "wd"), *args],
                          cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=120)


def test_a_directory_with_main_runs_as_python_runs_it(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__main__.py").write_text(PROBE_SCRIPT)
    plain = subprocess.run([sys.executable, "app", "exit3"], cwd=tmp_path, capture_output=True, text=True,
                           env=ENV, timeout=120)
    watched = _watchdog_run(tmp_path, "--quiet", "app", "exit3")
    assert plain.returncode == watched.returncode == 3, watched.stderr
    assert json.loads(plain.stdout.splitlines()[0]) == json.loads(watched.stdout.splitlines()[0])


def test_a_directory_without_main_is_refused_as_python_refuses_it(tmp_path):
    (tmp_path / "empty").mkdir()
    plain = subprocess.run([sys.executable, "empty"], cwd=tmp_path, capture_output=True, text=True, env=ENV,
                           timeout=120)
    watched = _watchdog_run(tmp_path, "empty")
    assert plain.returncode == watched.returncode == 1
    python_says = plain.stderr.split(": ", 1)[1]  # after the interpreter's name
    assert "can't find '__main__' module in" in python_says
    assert watched.stderr == f"watchdog run: {python_says}"
    assert not (tmp_path / "wd").exists()


def _package(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "probe.py").write_text(PROBE_SCRIPT)


@pytest.mark.parametrize("args", [("ok",), ("exit3",), ("ok", "--quiet", "--report-dir", "x", "-m", "y")])
def test_dash_m_runs_a_module_as_python_dash_m(tmp_path, args):
    _package(tmp_path)
    plain = subprocess.run([sys.executable, "-m", "pkg.probe", *args], cwd=tmp_path, capture_output=True,
                           text=True, env=ENV, timeout=120)
    watched = _watchdog_run(tmp_path, "--no-dashboard", "-m", "pkg.probe", *args)
    assert plain.returncode == watched.returncode, watched.stderr
    seen = json.loads(watched.stdout.splitlines()[0])
    assert seen == json.loads(plain.stdout.splitlines()[0])
    assert seen["argv"][0] == str(tmp_path / "pkg" / "probe.py") and seen["path0"] == str(tmp_path)
    assert seen["name"] == "__main__"
    report = json.loads((tmp_path / "wd" / "report.json").read_text())
    assert report["run"]["argv"][0] == str(tmp_path / "pkg" / "probe.py")


def test_dash_m_errors_are_python_s(tmp_path):
    _package(tmp_path)
    for module in ("pkg", "nowhere.mod"):
        plain = subprocess.run([sys.executable, "-m", module], cwd=tmp_path, capture_output=True, text=True,
                               env=ENV, timeout=120)
        watched = _watchdog_run(tmp_path, "-m", module)
        assert plain.returncode == watched.returncode == 1
        assert watched.stderr == "watchdog run: " + plain.stderr.split(": ", 1)[1]
    assert not (tmp_path / "wd").exists()


@pytest.mark.parametrize("quiet", [False, True])
def test_the_last_line_names_report_html(tmp_path, quiet):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "probe.py").write_text(PROBE_SCRIPT)
    watched = _watchdog_run(tmp_path, "--no-dashboard", *(["--quiet"] if quiet else []), "scripts/probe.py")
    assert watched.returncode == 0, watched.stderr
    assert watched.stderr.splitlines()[-1] == f"watchdog: report written to {tmp_path / 'wd' / 'report.html'} (0 findings)"
    assert (tmp_path / "wd" / "report.html").is_file()


def test_split_module_args_reads_the_line_as_python_dash_m():
    from watchdog.cli import _parser, _subparser, split_module_args

    run = _subparser(_parser(), "run")
    assert split_module_args(["-m", "pkg.mod", "--quiet"], run) == ([], "pkg.mod", ["--quiet"])
    assert split_module_args(["--report-dir", "-m", "--quiet", "-mpkg", "a"], run) == (
        ["--report-dir", "-m", "--quiet"], "pkg", ["a"])
    assert split_module_args(["--report=d", "--fail-on", "error", "-m", "p"], run) == (
        ["--report=d", "--fail-on", "error"], "p", [])
    assert split_module_args(["train.py", "-m", "x"], run) == (["train.py", "-m", "x"], None, [])
