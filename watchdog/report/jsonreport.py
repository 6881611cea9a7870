"""``report.json``: built from events alone, so a crashed run's log gives the same report.

A live run builds it from the events it kept in memory (``REPORT_EVENT_KINDS``), so lines its event
log failed to write are not lost; ``watchdog report DIR`` builds it from ``DIR/events.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ..core.events import Event
from ..core.format import SEVERITIES, most_severe_first

# report.json's version; report.schema.json (packaged beside this file) describes it. A field added
# keeps the version (readers ignore what they do not know); one removed, renamed or changed in
# meaning bumps it, and the schema file with it.
SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
# The event kinds build_report reads.
from ..core.events import REPORT_EVENT_KINDS  # noqa: E402 - re-exported: the kinds build_report reads


def build_report(events: Iterable[Event]) -> dict[str, Any]:
    run: dict[str, Any] = {}
    findings: dict[tuple[str, Any], dict[str, Any]] = {}
    epochs: list[dict[str, Any]] = []
    passes: list[dict[str, Any]] = []
    ranks: dict[str, Any] | None = None
    ended = False
    last_t = None
    for event in events:
        last_t = event.t
        data = event.data
        if event.kind == "run_start":
            run.update(data)
        elif event.kind == "run_end":
            run.update(data)
            ended = True
        elif event.kind == "finding":
            finding = {k: v for k, v in data.items() if k != "update"}
            findings[(finding.get("code"), finding.get("key"))] = finding
        elif event.kind == "epoch_end":
            epochs.append(data)
        elif event.kind == "ranks_merged":  # a multi-process run's merged report (distributed/)
            ranks = data
        elif event.kind == "loader_pass_end":
            passes.append({k: data.get(k) for k in (
                "loader", "loader_id", "pass_index", "role", "batches", "samples", "steps", "complete", "epochs_completed")})
    if not ended:
        run["status"] = "incomplete"
        run["note"] = "the run ended without closing its log (killed, or still running); this report is from its event log"
        run["last_event_time"] = last_t
    ordered = sorted(findings.values(), key=lambda f: (most_severe_first(f.get("severity")), f.get("time") or 0))
    counts = {s: sum(1 for f in ordered if f.get("severity") == s) for s in SEVERITIES}
    report = {
        "schema": SCHEMA_VERSION,
        "run": run,
        "summary": {"errors": counts["error"], "warnings": counts["warning"], "info": counts["info"],
                    "epochs": run.get("epochs", len(epochs)), "steps": run.get("steps")},
        "findings": ordered,
        "epochs": epochs,
        "passes": passes,
    }
    if ranks is not None:
        report["ranks"] = ranks
    return report


def load_schema() -> dict[str, Any]:
    """report.json's JSON Schema (draft 2020-12), as published in ``report.schema.json``."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def write_report_json(directory: Path, report: dict[str, Any]) -> Path:
    from .files import write_text_atomically

    return write_text_atomically(Path(directory) / "report.json", json.dumps(report, indent=2, default=str) + "\n")
