"""The post-run HTML report: one self-contained file (inline CSS and SVG, no JS, no network).

Built from a RunView only, rendered from the Jinja2 templates in ``templates/`` with autoescaping
(``markup.render``): the page's shell and the run's generic sections (summary, findings, checks,
passes, details) are ``page.html``; each feature's view (``watchdog/<feature>/view.py``) gives its
section, in its ``section_order``, and its summary cards. A string from the user's program (paths,
loader and variable names, messages, evidence, argv) is escaped wherever a template writes it.
"""
from __future__ import annotations

import datetime as _dt
import os
import pathlib
from dataclasses import dataclass
from typing import Any, Mapping

from .._version import __version__
from ..core.format import DASH, fmt_duration, fmt_rate, run_headline
from .fold import FindingView, RunView
from .markup import SEV_COLOR, macro, render


def render_html(view: RunView, title: str | None = None) -> str:
    """The whole report as one HTML string (``templates/page.html``)."""
    title = title or "watchdog report"
    features = sorted(view.features.values(), key=lambda f: f.section_order)
    return str(render(
        "page.html",
        version=__version__,
        title=title,
        run=view,
        started=(_dt.datetime.fromtimestamp(view.t_start, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
                 if view.t_start else DASH),
        command=" ".join(view.argv) if view.argv else DASH,
        versions=", ".join(f"{k} {val}" for k, val in sorted(view.versions.items())) if view.versions else DASH,
        cards=_cards(view),
        findings=[_finding(f) for f in view.findings_sorted()],
        checks=sorted(view.checks.items()),
        feature_sections=[section for section in (feature.html_section() for feature in features) if section],
        passes=view.passes[:MAX_PASS_ROWS],
        passes_total=len(view.passes),
        details_tables=_details_tables(view.details or {}),
        details_extra={k: view.details[k] for k in ("devices", "exception", "epoch_source", "disabled")
                       if view.details and view.details.get(k)},
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    ))


MAX_PASS_ROWS = 2000
MAX_DETAIL_ROWS = 200


def write_html(view: RunView, report_dir: str | os.PathLike, name: str = "report.html") -> pathlib.Path:
    """Write the report atomically next to report.json; returns its path."""
    d = pathlib.Path(report_dir)
    d.mkdir(parents=True, exist_ok=True)
    from .files import write_text_atomically

    return write_text_atomically(d / name, render_html(view))


# ---------------------------------------------------------------------- what the page shows
@dataclass
class Card:
    """A summary tile: its title and value (text, or Markup from a template)."""
    title: str
    value: Any
    wide: bool = False


def _cards(v: RunView) -> list[Card]:
    c = v.counts()
    # How the script ended and what was found, in one headline coloured by the worse of the two
    # (run_headline): a run with error findings never shows a green tile.
    run_text, run_severity = run_headline(v.status, c)
    cards = [
        Card("run", macro("headline", run_text.removeprefix("run "), run_severity), wide=True),
        Card("epochs", v.epochs),
        Card("optimizer steps", f"{v.steps:,}"),
        Card("duration", fmt_duration(v.elapsed)),
        Card("mean rate", fmt_rate(v.steps / v.elapsed) if v.elapsed and v.steps else DASH),
        Card("errors", macro("counted", c["error"], "error")),
        Card("warnings", macro("counted", c["warning"], "warning")),
        Card("info", c["info"]),
    ]
    cards += [Card(title, value) for feature in v.features.values() for title, value in feature.summary_cards()]
    return cards


def _finding(f: FindingView) -> dict[str, Any]:
    meta: list[Any] = []
    if f.epoch is not None:
        meta.append(f"epoch {f.epoch}")
    if f.step is not None:
        meta.append(f"step {f.step}")
    if f.where:
        meta.append(macro("where_at", _where(f.where)))
    if f.updates:
        meta.append(f"updated {f.updates}×")
    return {"severity": f.severity, "css_severity": f.severity if f.severity in SEV_COLOR else "info",
            "code": f.code, "meta": meta, "message": f.message, "fix": f.fix,
            "evidence": f.evidence if f.evidence not in (None, {}, []) else None}


def _details_tables(d: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...], list[Mapping[str, Any]]]]:
    """What the run was made of, from its run_end event: optimizers, models, loaders."""
    tables = (
        ("optimizers", ("name", "type", "steps")),
        ("models", ("name", "type")),
        ("loaders", ("names", "dataset", "dataset_size", "roles", "passes", "where")),
    )
    out = []
    for key, columns in tables:
        rows = [r for r in d.get(key) or [] if isinstance(r, Mapping)]
        if rows:
            out.append((key, columns, rows[:MAX_DETAIL_ROWS]))
    return out


def _where(where: Any) -> str:
    if isinstance(where, Mapping):
        f, line, fn = where.get("file"), where.get("line"), where.get("function")
        if f:
            return f"{f}:{line}" + (f" in {fn}()" if fn else "") if line else str(f)
        return ", ".join(f"{k}={val}" for k, val in where.items())
    return str(where)


def log_view(directory: str | os.PathLike) -> RunView:
    """The RunView of DIR/events.jsonl, as the reports show it (a log with no run_end: incomplete)."""
    from ..core.events import EVENT_LOG_NAME

    view = RunView.from_log(pathlib.Path(directory) / EVENT_LOG_NAME)
    if view.status == "running":  # no run_end in the log: the process died or is still going
        view.status = "incomplete"
    return view


def write_html_report(directory: str | os.PathLike, report: Any = None) -> pathlib.Path:
    """DIR/report.html from DIR/events.jsonl (called by `reports.write_reports` and `watchdog report`).

    Built from the event log rather than from `report`, so a live run and `watchdog report DIR`
    go through the same RunView.
    """
    return write_html(log_view(directory), directory)
