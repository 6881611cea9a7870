"""The event kinds are one declared registry; every finding names the check that made it; the
views show a check's state from that name (never guessed from the code's family)."""
from __future__ import annotations

import ast
import pathlib
import re

import pytest

import watchdog
from tests.eval_loops import evaluate, setup, train_one_epoch
from watchdog.core import registry
from watchdog.core.check import Check
from watchdog.core.events import EventBus, UnknownEventKind
from watchdog.report.fold import RunView

PACKAGE = pathlib.Path(watchdog.__file__).parent


def emitted_kinds() -> set[str]:
    """Every literal kind passed to ``emit(...)`` anywhere in the package."""
    kinds = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("emit", "_emit") and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                kinds.add(node.args[0].value)
    return kinds


def test_every_emitted_and_handled_kind_is_declared_and_documented():
    declared = registry.event_kinds()
    assert emitted_kinds() <= set(declared)
    for check_class in registry.all_checks():
        handled = {a[3:] for a in dir(check_class) if a.startswith("on_")}
        assert handled <= set(declared), check_class
    folded = {a[4:] for a in dir(RunView) if a.startswith("_on_")}
    assert folded <= set(declared)
    for view_class in registry.views():   # a feature's view folds its kinds with on_<kind>
        handled = {a[3:] for a in dir(view_class) if a.startswith("on_")}
        assert handled <= set(declared), view_class
    architecture = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    undocumented = [k for k in declared if f"`{k}`" not in architecture]
    assert not undocumented, f"docs/architecture.md does not list {undocumented}"


class MisspeltCheck(Check):
    name = "misspelt"

    def on_loader_pass_ends(self, event):  # one letter too many: would never be called
        raise AssertionError("never dispatched")


def test_a_misspelt_handler_is_refused_at_subscription():
    bus = EventBus(lambda owner, exc: None, registry.event_kinds())
    with pytest.raises(UnknownEventKind, match="loader_pass_ends"):
        bus.subscribe(MisspeltCheck(run=None))
    assert not bus.handles("loader_pass_ends")


def test_a_misspelt_handler_disables_its_check_at_start_up(tmp_path, monkeypatch):
    checks = registry.all_checks()
    monkeypatch.setattr(registry, "all_checks", lambda: [*checks, MisspeltCheck])
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        pass
    [internal] = [f for f in run.findings if f.code == "watchdog/internal-error"]
    assert internal.evidence["component"] == "check:misspelt"
    assert "loader_pass_ends" in internal.message


def test_emitting_an_undeclared_kind_is_refused(tmp_path):
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        with pytest.raises(UnknownEventKind):
            run.emit("no_such_kind", {})


def test_findings_name_their_check_and_the_view_marks_that_check(tmp_path):
    model, train_loader, val_loader, optimizer, criterion = setup()
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        model.train()
        for _ in range(3):
            train_one_epoch(model, train_loader, optimizer, criterion, set_train=False)
            evaluate(model, val_loader, criterion)
    [mode] = [f for f in run.findings if f.code == "eval/train-in-eval-mode"]
    assert mode.check == "eval-mode"
    view = RunView.from_log(tmp_path / "wd" / "events.jsonl")
    assert set(view.checks) >= {c.name for c in registry.all_checks()}
    assert view.checks["eval-mode"].severity == "error"
    assert view.checks["eval-cadence"].severity == "ok"  # evaluation ran every epoch
    report = (tmp_path / "wd" / "report.html").read_text()
    assert re.search(r"eval-mode", report) and re.search(r"eval-cadence", report)


def test_a_clean_run_lists_every_check_as_ok(tmp_path):
    from tests.loops import fit, loader, make_dataset, make_model

    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        fit(make_model(), loader(make_dataset(128)), loader(make_dataset(64, seed=1)), epochs=2)
    view = RunView.from_log(tmp_path / "wd" / "events.jsonl")
    assert {name: st.severity for name, st in view.checks.items()} == {
        c.name: "ok" for c in registry.all_checks()}, [str(f) for f in run.findings]


def test_the_cadence_chart_shows_the_checks_verdicts_for_evaluation_without_a_loader(tmp_path):
    """Evaluation by forwards on in-memory tensors (no DataLoader pass): the check finds nothing, and
    the HTML says each epoch was evaluated, by the model (it once said "4 of 4 epochs had no evaluation")."""
    import torch

    model, train_loader, _, optimizer, criterion = setup()
    x_val = torch.randn(16, 8)
    with watchdog.watch(report_dir=tmp_path / "wd", summary=False, dashboard=False) as run:
        for _ in range(4):
            train_one_epoch(model, train_loader, optimizer, criterion)
            model.eval()
            with torch.no_grad():
                model(x_val)
    assert not [f for f in run.findings if f.code.startswith("eval/")], [str(f) for f in run.findings]
    view = RunView.from_log(tmp_path / "wd" / "events.jsonl")
    rows = view.eval_cadence()
    assert [r["evaluated"] for r in rows] == [True] * 4 and not any(r["flagged"] for r in rows)
    assert all(r["by"] == ["no_grad forwards of `model` (Sequential)"] for r in rows), rows
    html = (tmp_path / "wd" / "report.html").read_text()
    assert "4 of 4 epochs were evaluated (by no_grad forwards of `model` (Sequential)); the cadence check flagged none." in html
    assert "had no evaluation" not in html
