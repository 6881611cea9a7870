"""The HTML building blocks every section of the report uses, the generic ones and the features'.

The page is rendered from Jinja2 templates with autoescaping: every value a template writes is
escaped unless it is `Markup` (what `render()` returns, a chart, a template's own macros), so a
string from the user's program (a path, a loader or variable name, a message, evidence, argv) is
text wherever it lands, in an element or an attribute. Nothing here builds HTML by concatenation.

Templates are package data: ``name.html`` is ``watchdog/report/templates/name.html`` (the page,
its generic sections, the charts and ``macros.html``); ``package:name.html`` is that package's
``templates/name.html`` (a feature's section: ``render(f"{__package__}:section.html", ...)``).
Jinja2 is imported on the first render, so importing a view costs nothing.

Compiled templates are kept between processes (Jinja2's bytecode cache) in ``templates-<key>/`` of
watchdog's cache directory (``cache_dir()``): compiling the page's templates costs ~50-100 ms in each
new process, loading them ~1 ms. A cached template is used only while its source is unchanged (the
cache checks a hash of it); ``<key>`` changes with watchdog's and Jinja2's versions, the Python
version and the environment's settings. A cache that cannot be made, read or written is no cache:
the page is the same.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any, Callable

from markupsafe import Markup

from .._version import __version__
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

    settings: dict[str, Any] = dict(autoescape=True, trim_blocks=True, lstrip_blocks=True,
                                    undefined=jinja2.StrictUndefined, auto_reload=False)
    env = jinja2.Environment(loader=PackageTemplates(), bytecode_cache=_bytecode_cache(jinja2, settings), **settings)
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


# -- compiled templates kept between processes ------------------------------------------------------
CACHE_DIR_ENV = "WATCHDOG_CACHE_DIR"


def cache_dir() -> Path | None:
    """Where watchdog keeps what later processes may reuse: ``$WATCHDOG_CACHE_DIR`` (set but empty:
    nowhere), else ``$XDG_CACHE_HOME/watchdog``, else ``~/.cache/watchdog``; None when there is no
    home to put it in."""
    chosen = os.environ.get(CACHE_DIR_ENV)
    if chosen is not None:
        return Path(chosen).expanduser() if chosen.strip() else None
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    if base and os.path.isabs(base):
        return Path(base) / "watchdog"
    try:
        return Path.home() / ".cache" / "watchdog"
    except (KeyError, RuntimeError, OSError):
        return None


def _private_dir(path: Path) -> bool:
    """Make ``path`` (mode 0700) if missing; whether it is a directory, not a link, of this user's,
    that no one else may write to (compiled templates are code: never read one another user could
    have written)."""
    try:
        path.mkdir(mode=stat.S_IRWXU, parents=True, exist_ok=True)
        st = os.lstat(path)
    except (OSError, ValueError):
        return False
    if not stat.S_ISDIR(st.st_mode) or stat.S_IMODE(st.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
        return False
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()


def _bytecode_cache(jinja2: Any, settings: dict[str, Any]) -> Any:
    """The environment's bytecode cache, or None (no cache directory, or not a private one)."""
    root = cache_dir()
    if root is None:
        return None
    described = repr((__version__, jinja2.__version__, sys.implementation.cache_tag, sys.version_info[:2],
                      sorted((k, getattr(v, "__name__", v)) for k, v in settings.items())))
    directory = root / f"templates-{hashlib.sha256(described.encode()).hexdigest()[:16]}"
    if not (_private_dir(root) and _private_dir(directory)):
        return None

    class TemplateCache(jinja2.FileSystemBytecodeCache):
        """Jinja2's file cache, where nothing that goes wrong is an error: a file that cannot be read
        (or is not a compiled template) is compiled again, one that cannot be written stays unwritten."""

        def load_bytecode(self, bucket: Any) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:
                bucket.reset()

        def dump_bytecode(self, bucket: Any) -> None:
            try:
                super().dump_bytecode(bucket)
            except Exception:
                pass

    return TemplateCache(str(directory), "%s.jinja")
