"""Text for the terminal: names, paths, argv and exception messages made safe to print.

These strings come from the user's program (variable and container names, checkpoint paths,
command lines, exception messages). Printed raw, a control character in one of them could move
the cursor, clear the screen, retitle the terminal or reorder text (bidirectional overrides).
``terminal_safe`` is the one escaping the terminal summary and the dashboard go through.
"""

from __future__ import annotations

from typing import Any

# Bidirectional overrides, embeddings and isolates, and the marks that reorder text.
_BIDI = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def _unsafe(code: int) -> bool:
    return code < 0x20 or 0x7F <= code < 0xA0 or code in _BIDI


def terminal_safe(text: Any, *, keep_newlines: bool = False) -> str:
    """``text`` with each control character written as a visible escape (``\\x1b``, ``\\u202e``).

    ``keep_newlines`` keeps ``\\n`` (a finding's multi-line message); nothing else is kept.
    """
    text = text if isinstance(text, str) else str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if not _unsafe(code) or (keep_newlines and ch == "\n"):
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def report_written_line(report_dir: Any, findings: int) -> str:
    """The run's last line: where its report is (the HTML page when there is one) and how many findings."""
    import os

    html = os.path.join(os.fspath(report_dir), "report.html")
    where = html if os.path.exists(html) else os.path.join(os.fspath(report_dir), "report.json")
    return terminal_safe(f"watchdog: report written to {where} ({findings} finding{'' if findings == 1 else 's'})")
