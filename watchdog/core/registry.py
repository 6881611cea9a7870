"""The features a run is made of: one line per feature.

A feature is a package that declares ``PROBES`` (installed in this order, undone in reverse),
``CHECKS`` (subscribed to the event bus in this order), ``EVENTS`` (the kinds it emits) and ``VIEWS``
(its part of the views: ``report.fold.FeatureView`` classes), and where it needs them
``CROSS_RANK_CHECKS`` (run when a multi-process run's ranks are merged) and ``AT_RUN_END`` (hooks
run after the run's reports are written). The core imports features only through
this registry, lazily, so ``import watchdog`` stays cheap and a new family is one folder plus one
line here. A feature package imports without torch: its probes and checks load when first asked for
(a module ``__getattr__``), so ``watchdog report`` renders every feature's view without loading torch;
its views load when first asked for too, so a run imports none of them (nor the report's folding
and charts) before its dashboard or its report needs them.
"""
from __future__ import annotations

import importlib
from typing import Any

FEATURES: tuple[str, ...] = (
    "watchdog.core.probes",
    "watchdog.overlap",
    "watchdog.checkpoint",
    "watchdog.evaluation",
    "watchdog.memory",
    "watchdog.distributed",
    "watchdog.integrations",
    "watchdog.report",
)


def _declared(attribute: str) -> list[Any]:
    found: list[Any] = []
    for name in FEATURES:
        found.extend(getattr(importlib.import_module(name), attribute, ()))
    return found


def all_probes() -> list[Any]:
    """Every feature's probe classes, in install order."""
    return _declared("PROBES")


def write_reports(report_dir: Any, events: Any, **options: Any) -> Any:
    """The end-of-run reports (``watchdog.report.reports.write_reports``)."""
    return importlib.import_module("watchdog.report.reports").write_reports(report_dir, events, **options)


def event_kinds() -> dict[str, str]:
    """Every event kind the log can hold (the core's and each feature's ``EVENTS``), with what it carries."""
    from .events import CORE_EVENTS

    kinds = dict(CORE_EVENTS)
    for name in FEATURES:
        kinds.update(getattr(importlib.import_module(name), "EVENTS", {}))
    return kinds


def all_checks() -> list[Any]:
    """Every feature's check classes, in subscription order."""
    return _declared("CHECKS")


def pass_captures() -> list[Any]:
    """Every feature's DataLoader pass captures (``PASS_CAPTURES``; the protocol: ``core/loaders.py``)."""
    return _declared("PASS_CAPTURES")


def cross_rank_checks() -> list[Any]:
    """Every feature's cross-rank check classes (``CROSS_RANK_CHECKS``: run when a multi-process run's
    ranks are merged; the base class is ``distributed/crossrank.py``)."""
    return _declared("CROSS_RANK_CHECKS")


def run_end_hooks() -> list[Any]:
    """Every feature's run-end hooks (``AT_RUN_END``: callables ``hook(run)`` run once the run's log is
    closed and its reports are written; the distributed feature merges the ranks there)."""
    return _declared("AT_RUN_END")


def views() -> list[Any]:
    """Every feature's view classes (``VIEWS``), in feature order."""
    return _declared("VIEWS")
