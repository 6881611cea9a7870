"""The HTML building blocks every section of the report uses, the generic ones and the features'.

The page is rendered from Jinja2 templates with autoescaping: every value a template writes is
escaped unless it is `Markup` (what `render()` returns, a chart, a template's own macros), so a
string from the user's program (a path, a loader or variable name, a message, evidence, argv) is
text wherever it lands, in an element or an attribute. Nothing here builds HTML by concatenation.

Templates are package data: ``name.html`` is ``watchdog/report/templates/name.html`` (the page,
its generic sections, the charts and ``macros.html``); ``package:name.html`` is that package's
``templates/name.html`` (a feature's section: ``render(f"{__package__}:section.html", ...)``).
Jinja2 is imported on the first render, so importing a view costs nothing.
"""
from __future__ import annotations

import importlib.resources
import json
import math
from typing import Any, Callable

from markupsafe import Markup

from ..core.format import DASH, fmt_bytes, fmt_ranges

SEV_COLOR = {"error": "#c62828", "warning": "#b26a00", "info": "#1565c0", "ok": "#2e7d32",
             "disabled": "#6a1b9a"}
PALETTE = ("#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#b26a00", "#00838f", "#ad1457", "#4e342e")
REPORT_TEMPLATES = "watchdog.report"

__all__ = ["Markup", "PALETTE", "SEV_COLOR", "fmt", "json_text", "macro", "number_text", "render"]


def fmt(value: Any) -> str:
    """A value for display: None and empty become the dash."""
    if value is None or value == "":
        return DASH
    return str(value)


def number_text(x: Any) -> str:
    """A count or measurement: thousands separated, whole floats as integers, None as the dash."""
    if x is None:
        return DASH
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    return f"{x:,}" if isinstance(x, int) else f"{x:,.3g}"


def json_text(value: Any) -> str:
    """Evidence and the like as indented JSON (repr when it is not JSON)."""
    try:
        return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def coordinate(x: float) -> str:
    """An SVG coordinate: one decimal."""
    return f"{x:.1f}" if math.isfinite(x) else "0"


def render(template: str, /, **context: Any) -> Markup:
    """The template `template` (``name.html`` of report, or ``package:name.html``) rendered with
    `context`, autoescaped: safe to place in another template as it is."""
    return Markup(_environment().get_template(template).render(**context))


def macro(name: str, /, *args: Any, template: str = "macros.html") -> Markup:
    """One macro of `template` (report's ``macros.html`` by default) called with `args`: a cell, a
    badge, a coloured count (``macro("badge", "error")``)."""
    return Markup(getattr(_environment().get_template(template).module, name)(*args))


_ENVIRONMENT: Any = None


def _environment() -> Any:
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        _ENVIRONMENT = _make_environment()
    return _ENVIRONMENT


def _make_environment() -> Any:
    import jinja2

    class PackageTemplates(jinja2.BaseLoader):
        """``package:name`` -> ``templates/name`` of that package; ``name`` alone: report's."""

        def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Callable[[], bool]]:
            package, _, name = template.rpartition(":")
            try:
                resource = importlib.resources.files(package or REPORT_TEMPLATES).joinpath("templates").joinpath(name)
                source = resource.read_text(encoding="utf-8")
            except (ImportError, OSError, ValueError) as e:
                raise jinja2.TemplateNotFound(template) from e
            return source, None, lambda: True  # package data: never changes while we run

    env = jinja2.Environment(loader=PackageTemplates(), autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined, auto_reload=False)
    env.filters.update(
        dash=fmt,               # None and "" as the dash
        number=number_text,     # 1,234 / 0.125
        bytes=fmt_bytes,        # 21.0 MiB
        json=json_text,         # evidence as indented JSON (escaped like any text)
        px=coordinate,          # an SVG coordinate
        ranges=fmt_ranges,      # 0–2, 4
    )
    env.globals.update(SEV_COLOR=SEV_COLOR, DASH=DASH)
    return env
