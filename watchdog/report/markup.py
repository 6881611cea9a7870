"""The HTML building blocks every section of the report uses, the generic ones and the features'.

Every string that can come from the user's program (paths, loader and variable names, messages,
evidence, argv) goes through `esc()` = html.escape(quote=True).
"""
from __future__ import annotations

import html
import json
from typing import Any, Mapping

from ..core.format import DASH

SEV_COLOR = {"error": "#c62828", "warning": "#b26a00", "info": "#1565c0", "ok": "#2e7d32",
             "disabled": "#6a1b9a"}
PALETTE = ("#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#b26a00", "#00838f", "#ad1457", "#4e342e")


def fmt(value: Any) -> str:
    """A value for display: None and empty become the dash."""
    if value is None or value == "":
        return DASH
    return str(value)


def esc(value: Any) -> str:
    """Escape anything for HTML text or attribute context."""
    return html.escape(fmt(value) if not isinstance(value, str) else value, quote=True)


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


def value_cell(value: Any, flagged: bool = False) -> str:
    """A table cell's content: ✔ for True, ✖ for False (red "✖ missing" when a finding flagged it)."""
    if value is True:
        return '<span class="yes">✔</span>'
    if value is False:
        return '<span class="no">✖ missing</span>' if flagged else '<span class="absent">✖</span>'
    if value is None:
        return DASH
    if isinstance(value, Mapping):
        return esc(", ".join(f"{k}: {val}" for k, val in value.items()))
    if isinstance(value, (list, tuple)):
        return esc(", ".join(map(str, value)) or DASH)
    return esc(value)
