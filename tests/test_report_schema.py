"""Issue 13, item 10: report.json is a published contract, described by report.schema.json (JSON
Schema draft 2020-12, versioned with ``schema``). conftest validates every report.json a test
writes under its tmp_path; these tests pin the schema itself."""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import report_validator, validate_report_file
from tests.fixtures import fixture_events, fixture_names
from watchdog.core.events import Event
from watchdog.core.findings import Finding
from watchdog.report.jsonreport import SCHEMA_PATH, SCHEMA_VERSION, build_report, load_schema

ROOT = Path(__file__).resolve().parent.parent

BROKEN_LOOP = """\
import torch
from torch.utils.data import DataLoader, TensorDataset
ds = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
train_loader = DataLoader(ds, batch_size=16)
val_loader = train_loader
model = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(2):
    for x, y in train_loader:
        opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    with torch.no_grad():
        for x, y in val_loader:
            model(x)
"""


def test_the_schema_is_valid_draft_2020_12_and_versioned_with_the_report():
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema"] == {"const": SCHEMA_VERSION, "description": schema["properties"]["schema"]["description"]}
    assert SCHEMA_PATH == ROOT / "watchdog" / "report" / "report.schema.json"
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "report.schema.json" in config["tool"]["setuptools"]["package-data"]["watchdog.report"]


def test_the_schema_names_every_field_a_finding_has():
    finding_fields = {f for f in Finding.__dataclass_fields__}
    described = load_schema()["$defs"]["finding"]
    assert set(described["properties"]) == finding_fields == set(described["required"])


@pytest.mark.parametrize("name", fixture_names())
def test_reports_of_the_recorded_runs_follow_the_schema(name):
    events = [Event(e["kind"], e["data"], None, e.get("t")) for e in fixture_events(name)]
    report = json.loads(json.dumps(build_report(events), default=str))
    assert list(report_validator().iter_errors(report)) == []
    cut = json.loads(json.dumps(build_report(events[:len(events) // 2]), default=str))  # a run killed half-way
    assert cut["run"]["status"] == "incomplete" and list(report_validator().iter_errors(cut)) == []


def test_a_report_from_watchdog_run_follows_the_schema_and_a_ci_gate_reads_it(tmp_path):
    (tmp_path / "train.py").write_text(BROKEN_LOOP)
    proc = subprocess.run([sys.executable, "-m", "watchdog", "run", "--report-dir", "wd", "--no-dashboard",
                           "--quiet", "train.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    validate_report_file(tmp_path / "wd" / "report.json")
    # The README's gate for CI: fail the job when the report holds an error.
    gate = subprocess.run([sys.executable, "-c", (
        "import json, sys; r = json.load(open('wd/report.json')); "
        "[print(f['severity'], f['code'], f['message']) for f in r['findings']]; "
        "sys.exit(1 if r['summary']['errors'] else 0)")], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert gate.returncode == 1 and gate.stdout.startswith("error overlap/same-loader "), gate.stdout + gate.stderr


def test_a_report_that_departs_from_the_schema_is_named_precisely(tmp_path):
    good = build_report([Event("run_start", {"run_id": "r"}, None, 1.0), Event("run_end", {"status": "ok"}, None, 2.0)])
    finding = Finding("overlap/train-eval", "error", "m", "f").to_dict()
    finding.update(code="overlap", severity="fatal")
    del finding["message"]
    bad = {**good, "findings": [finding], "summary": {**good["summary"], "errors": -1}}
    path = tmp_path / "elsewhere" / "report.json"
    path.parent.mkdir()
    path.write_text(json.dumps(bad))
    with pytest.raises(AssertionError) as raised:
        validate_report_file(path)
    text = str(raised.value)
    assert "at findings/0: 'message' is a required property" in text
    assert "at findings/0/code:" in text and "at findings/0/severity: 'fatal' is not one of" in text
    assert "at summary/errors: -1 is less than the minimum of 0" in text
    path.unlink()  # not left for the autouse validation
