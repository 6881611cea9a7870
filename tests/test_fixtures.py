"""The recorded event logs (tests/fixtures) against the package they were recorded from.

The dashboard and report tests read the examples' real runs; these tests make sure those runs still
say what the package says today: every event kind is one the package emits, every finding code is one
the README documents, and a fresh recording has the same kinds, codes and fields as the committed
one. When the package's events change on purpose, re-record: `python -m tests.fixtures.record`."""
from __future__ import annotations

import ast
import datetime
import json
import pathlib
import re
from collections import defaultdict

import pytest

from fixtures import FIXTURES, RECORDINGS, T0, fixture_events, fixture_names, fixture_path
from fixtures.record import FIXED_PID, REPO, TMP_PLACEHOLDER, normalise, record, validate

PACKAGE = REPO / "watchdog"


# ---------------------------------------------------------------------- what the package says
def documented_codes(readme: pathlib.Path = REPO / "README.md") -> set[str]:
    """Finding codes in the README's code tables (the rows under '## Finding codes')."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("\n## Finding codes", 1)[1]
    section = re.split(r"\n## (?!#)", section, maxsplit=1)[0]
    return set(re.findall(r"^\| `([a-z0-9_-]+/[a-z0-9_-]+)` \|", section, flags=re.M))


class _Emits(ast.NodeVisitor):
    """Every `X.emit(kind, data, ...)` call in one module, with the functions enclosing it."""

    def __init__(self):
        self.stack: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
        self.methods: set[ast.AST] = set()
        self.functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
        self.calls: list[tuple[ast.Call, tuple]] = []

    def visit_ClassDef(self, node):
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.methods.add(item)
        self.generic_visit(node)

    def visit_FunctionDef(self, node):
        self.functions.append(node)
        self.stack.append(node)
        self.generic_visit(node)
        self.stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node):
        self.calls.append((node, tuple(self.stack)))
        self.generic_visit(node)


def _callee(call: ast.Call) -> str | None:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def emitted_kinds(package: pathlib.Path = PACKAGE) -> tuple[set[str], list[str]]:
    """The event kinds the package's source can emit, and the emit calls whose kind could not be
    resolved to string constants (through parameters, up to the functions' call sites)."""
    modules = []
    for path in sorted(package.rglob("*.py")):
        visitor = _Emits()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        modules.append((path, visitor))
    functions = [(fn, fn in v.methods) for _, v in modules for fn in v.functions]
    calls = [(call, stack) for _, v in modules for call, stack in v.calls]

    def resolve(expr, stack, depth) -> set[str] | None:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.IfExp):
            a, b = resolve(expr.body, stack, depth), resolve(expr.orelse, stack, depth)
            return None if a is None or b is None else a | b
        if isinstance(expr, ast.Name) and depth < 5:
            for fn in reversed(stack):
                params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
                if expr.id in params + [a.arg for a in fn.args.kwonlyargs]:
                    return parameter_values(fn, expr.id, depth + 1)
        return None

    def parameter_values(fn, name, depth) -> set[str] | None:
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        is_method = any(f is fn and m for f, m in functions)
        position = params.index(name) - (1 if is_method else 0) if name in params else None
        values: set[str] = set()
        sites = [(c, s) for c, s in calls if _callee(c) == fn.name]
        for call, stack in sites:
            arg = next((k.value for k in call.keywords if k.arg == name), None)
            if arg is None and position is not None and position < len(call.args):
                arg = call.args[position]
            found = resolve(arg, stack, depth) if arg is not None else None
            if found is None:
                return None
            values |= found
        return values or None

    kinds: set[str] = set()
    unresolved: list[str] = []
    for path, visitor in modules:
        for call, stack in visitor.calls:
            if _callee(call) not in ("emit", "_emit") or not isinstance(call.func, ast.Attribute) or len(call.args) < 2:
                continue   # logging's Handler.emit(record) takes one argument
            found = resolve(call.args[0], stack, 0)
            if found is None:
                unresolved.append(f"{path.relative_to(package.parent)}:{call.lineno}")
            else:
                kinds |= found
    return kinds, unresolved


def test_the_package_s_event_kinds_are_all_found_in_its_source():
    kinds, unresolved = emitted_kinds()
    assert unresolved == [], "emit calls whose kind this test cannot resolve; teach emitted_kinds() their form"
    # the documented core of the log format (docs/architecture.md) is among them
    assert {"run_start", "run_end", "loader_pass_start", "loader_pass_end", "epoch_end", "finding",
            "optimizer_first_step", "checkpoint_saved", "memory_sample", "scheduler_seen"} <= kinds


# ---------------------------------------------------------------------- the fixtures against it
def test_every_recording_is_committed_and_every_fixture_is_a_recording():
    assert set(fixture_names()) == set(RECORDINGS)
    for name in RECORDINGS:
        assert fixture_path(name).stat().st_size < 64 * 1024, f"{name}: keep fixtures small (shorten the run)"


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_fixture_is_a_normalised_run_that_worked(name):
    events = fixture_events(name)
    assert validate(events) == []
    assert events[0]["t"] == T0 and events[0]["data"]["pid"] == FIXED_PID
    assert min(e["t"] for e in events) == T0       # shifted to T0; the order is as written (threads interleave)
    text = fixture_path(name).read_text(encoding="utf-8")
    assert str(REPO) not in text and "watchdog-record-" not in text       # no path of the recording machine
    assert json.dumps(events[0]["data"]["options"]["report_dir"]).startswith(f'"{TMP_PLACEHOLDER}/')


def test_fixture_event_kinds_are_kinds_the_package_emits():
    kinds, _ = emitted_kinds()
    seen = {(e["kind"], name) for name in fixture_names() for e in fixture_events(name)}
    stray = sorted((k, name) for k, name in seen if k not in kinds)
    assert stray == [], "event kinds the package no longer emits; re-record the fixtures"


def test_fixture_finding_codes_are_documented_in_the_readme():
    codes = documented_codes()
    assert len(codes) > 20 and {"overlap/train-eval", "memory/tensor-growth", "watchdog/internal-error"} <= codes
    assert not {"checkpoint/optimizer-missing", "memory/growth"} & codes   # what hand-written events once used
    seen = {(e["data"]["code"], name) for name in fixture_names() for e in fixture_events(name)
            if e["kind"] == "finding"}
    undocumented = sorted((c, name) for c, name in seen if c not in codes)
    assert undocumented == [], "finding codes the README does not document; re-record or document them"


def test_fixtures_cover_each_family_of_findings():
    codes = {e["data"]["code"] for name in fixture_names() for e in fixture_events(name) if e["kind"] == "finding"}
    assert {c.split("/")[0] for c in codes} == {"overlap", "checkpoint", "resume", "eval", "memory"}


# ---------------------------------------------------------------------- a fresh recording
def shape(events: list[dict]) -> dict:
    """What a schema change alters: the kinds, the finding codes, the data fields of each kind."""
    fields = defaultdict(set)
    for e in events:
        fields[e["kind"]] |= set(e["data"])
    return {"kinds": sorted(fields), "codes": sorted({e["data"]["code"] for e in events if e["kind"] == "finding"}),
            "fields": {k: sorted(v) for k, v in sorted(fields.items())}}


def test_a_fresh_recording_has_the_committed_fixture_s_shape(tmp_path):
    fresh = record("overlap_bug", tmp_path)
    assert shape(fresh) == shape(fixture_events("overlap_bug")), (
        "the package's events changed: re-record the fixtures with `python -m tests.fixtures.record`")


def test_normalise_makes_a_log_independent_of_the_machine_and_the_run(tmp_path):
    repo = tmp_path / "checkout"
    t = datetime.datetime(2026, 1, 1, 12, 0, 0, 500000, tzinfo=datetime.timezone.utc).timestamp()
    lines = [
        json.dumps({"kind": "run_start", "t": t, "data": {
            "run_id": "20260101-120000-777", "pid": 777, "cwd": str(repo), "started_at": "2026-01-01T12:00:00.250",
            "options": {"report_dir": str(tmp_path / "report")}}}),
        json.dumps({"kind": "scheduler_seen", "t": t + 0.5, "data": {"type": "StepLR", "id": 140000000001}}),
        json.dumps({"kind": "finding", "t": t + 1.5, "data": {"code": "x/y", "time": t + 1.5,
                                                          "message": f"saved {tmp_path}/a.pt", "evidence": {"id": 140000000001}}}),
        json.dumps({"kind": "run_end", "t": t + 5.75, "data": {"ended_at": "2026-01-01T12:00:06.250"}}),
    ]
    start, seen, finding, end = normalise(lines, tmp_path, repo)
    assert start["t"] == T0 and end["t"] == T0 + 5.75 and finding["data"]["time"] == T0 + 1.5
    assert start["data"]["pid"] == FIXED_PID and start["data"]["run_id"] == f"20231114-221320-{FIXED_PID}"
    assert start["data"]["started_at"] == "2023-11-14T22:13:19.750" and end["data"]["ended_at"] == "2023-11-14T22:13:25.750"
    assert start["data"]["cwd"] == "/src/watchdog" and start["data"]["options"]["report_dir"] == TMP_PLACEHOLDER + "/report"
    assert finding["data"]["message"] == f"saved {TMP_PLACEHOLDER}/a.pt"
    assert seen["data"]["id"] == finding["data"]["evidence"]["id"] == 1
