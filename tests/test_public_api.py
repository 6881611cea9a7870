"""Issue 13, item 8: the API is typed for users: ``py.typed`` packaged, ``watch``'s options as typed
keyword-only parameters, a docstring on every public name, and ``Run``'s surface what users read."""
from __future__ import annotations

import dataclasses
import inspect
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import watchdog
from tests.loops import fit, loader, make_dataset, make_model

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = [f for f in dataclasses.fields(watchdog.WatchOptions) if f.name != "extra"]


def test_watch_takes_each_option_as_a_typed_keyword_with_the_options_default():
    parameters = inspect.signature(watchdog.watch).parameters
    keywords = [p for p in parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert [p.name for p in keywords] == [f.name for f in OPTIONS]
    for parameter, option in zip(keywords, OPTIONS):
        assert parameter.default == option.default, parameter.name
        assert parameter.annotation is not inspect.Parameter.empty, parameter.name
    fn = parameters["fn"]
    assert fn.kind is inspect.Parameter.POSITIONAL_ONLY and fn.default is None


def test_every_public_name_has_its_own_docstring():
    for name in watchdog.__all__:
        if name == "__version__":
            continue
        doc = inspect.getdoc(getattr(watchdog, name))
        assert doc and not doc.startswith(f"{name}("), f"watchdog.{name} has no docstring"
    run_doc = inspect.getdoc(watchdog.Run)
    for public in ("findings", "status", "report_dir", "report_json", "report_html", "run_id", "loop", "options"):
        assert f"``{public}``" in run_doc
        assert inspect.getdoc(getattr(watchdog.Run, public)), public
    assert "For watchdog's own parts" in run_doc


def test_py_typed_is_in_the_package_and_in_its_package_data():
    assert (ROOT / "watchdog" / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["watchdog"]


def test_a_run_exposes_its_report_paths_and_read_only_state(report_dir):
    ds = make_dataset(64)
    with watchdog.watch(report_dir=report_dir, summary=False, dashboard=False) as run:
        fit(make_model(), loader(ds), None, epochs=1)
    assert run.report_dir == report_dir
    assert run.report_json == report_dir / "report.json" and run.report_json.is_file()
    assert run.report_html == report_dir / "report.html" and run.report_html.is_file()
    assert (run.status, run.loop.epoch, run.loop.steps) == ("ok", 1, 2)
    assert run.options == watchdog.WatchOptions(report_dir=report_dir, summary=False, dashboard=False)
    for name in ("status", "report_dir", "run_id", "loop", "options"):
        with pytest.raises(AttributeError):
            setattr(run, name, None)
    assert not hasattr(run, "depth") and not hasattr(run, "write_reports")  # internals are private


def test_the_decorator_forms_keep_working():
    @watchdog.watch
    def plain(x):
        return x + 1

    @watchdog.watch(summary=False, dashboard=False, report_dir=os.devnull + "-never-used")
    def configured(x):
        return x * 2

    assert plain.__name__ == "plain" and configured.__name__ == "configured"
    assert isinstance(watchdog.watch(summary=False), watchdog.core.run.Watcher)
    with pytest.raises(watchdog.WatchdogUsageError, match="unknown option"):
        watchdog.watch(colour=True)  # type: ignore[call-overload]


USER_CODE = '''
    from pathlib import Path
    import watchdog

    @watchdog.watch
    def train(epochs: int) -> float:
        return 0.5

    @watchdog.watch(report_dir="runs/wd", strict="error", eval_every=2)
    def train_strict(epochs: int) -> float:
        return 0.5

    loss: float = train(3) + train_strict(3)
    with watchdog.watch(dashboard=False, checkpoint_verify="every") as run:
        pass
    html: Path = run.report_html
    status: str = run.status
    steps: int = run.loop.steps
    codes: list[str] = [f.code for f in run.findings]
    watchdog.loader_role(object(), "eval")
    watchdog.mark_epoch()
'''
MISTAKES = '''
    watchdog.watch(strict="sometimes")
    watchdog.watch(colour=True)
    wrong: str = train(3)
'''


def test_mypy_checks_user_code_against_the_api(tmp_path):
    pytest.importorskip("mypy")
    (tmp_path / "user.py").write_text(textwrap.dedent(USER_CODE + MISTAKES))
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nfollow_imports = silent\n"
        "[mypy-torch.*,numpy.*,rich.*,psutil.*,pynvml.*]\nfollow_imports = skip\nignore_missing_imports = True\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", str(tmp_path / "cache"),
         "--no-error-summary", "user.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "MYPYPATH": str(ROOT)})
    lines = [line for line in proc.stdout.splitlines() if ": error:" in line]
    first_mistake = len(textwrap.dedent(USER_CODE + MISTAKES).splitlines()) - 2  # the last three lines
    assert [int(line.split(":")[1]) for line in lines] == [first_mistake, first_mistake + 1, first_mistake + 2], \
        proc.stdout + proc.stderr
    assert "No overload variant" in lines[0] and '"colour"' in lines[1] and "Incompatible types" in lines[2]
