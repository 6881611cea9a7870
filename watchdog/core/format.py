"""The one formatter: every number, size, range and severity order that a finding's message, the
dashboard, the terminal summary or the HTML report shows goes through here, so the same value reads
the same everywhere.

Sizes are binary (IEC): 1 KiB = 1024 B, 1 MiB = 1024 KiB, as the CUDA allocator, ``nvidia-smi``
and ``free`` count memory. 100 MiB is "100 MiB" in a finding, on the dashboard and in the HTML.
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterable

DASH = "–"

# Severities, mildest first; "ok" (a check with nothing to say) and "disabled" rank for views only.
SEVERITIES = ("info", "warning", "error")
_RANK = {"ok": 0, "info": 1, "warning": 2, "error": 3}


def severity_rank(severity: str | None) -> int:
    """0 for ok, 1 info, 2 warning, 3 error (an unknown severity ranks as info)."""
    return _RANK.get(severity or "", 1)


def most_severe_first(severity: str | None) -> int:
    """A sort key: errors before warnings before info."""
    return -severity_rank(severity)


def fmt_bytes(n: Any) -> str:
    """A size in binary units: ``512 B``, ``21.0 MiB``, ``305 MiB``, ``-3.0 GiB``; the dash when not a number."""
    if not isinstance(n, (int, float)) or isinstance(n, bool) or not math.isfinite(n):
        return DASH
    sign = "-" if n < 0 else ""
    n = abs(float(n))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            if unit == "B":
                return f"{sign}{int(n)} B"
            return f"{sign}{n:.1f} {unit}" if n < 100 else f"{sign}{n:.0f} {unit}"
        n /= 1024
    return DASH  # pragma: no cover


def fmt_int(n: Any) -> str:
    """A count with thousands separators: ``1,234``."""
    if not isinstance(n, (int, float)) or isinstance(n, bool) or not math.isfinite(n):
        return DASH
    return f"{int(round(n)):,}"


def fmt_count(n: int) -> str:
    """A large count, compact: ``950``, ``12k``, ``1.2M``."""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    return str(n)


def fmt_duration(seconds: float | None) -> str:
    """A run's length as a clock reads: ``04:07``, ``1:02:03``; the dash when unknown."""
    if seconds is None:
        return DASH
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def fmt_rate(rate: float | None) -> str:
    """Training steps per second: ``1,234 steps/s``, ``2.5 steps/s``, or ``4.0 s/step`` when slower."""
    if rate is None:
        return DASH
    if rate >= 10:
        return f"{rate:,.0f} steps/s"
    if rate >= 1:
        return f"{rate:.1f} steps/s"
    if rate > 0:
        return f"{1 / rate:.1f} s/step"
    return "0 steps/s"


def fmt_number(x: float | None) -> str:
    """1e-3, 2.1e-4, 0.5, 65536: short and exact enough for a message (``?`` when unknown)."""
    if x is None:
        return "?"
    if x == 0:
        return "0"
    if 1e-2 <= abs(x) < 1e5:
        return f"{x:.4g}"
    mant, exp = f"{x:.3e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


def _consecutive_runs(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """``[0, 1, 2, 4, 6, 7]`` → ``[(0, 2), (4, 4), (6, 7)]``: the distinct numbers as runs, in order."""
    runs: list[list[int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return [(a, b) for a, b in runs]


def fmt_ranges(numbers: Iterable[int]) -> str:
    """``[0, 1, 2, 4, 6, 7]`` → ``0–2, 4, 6–7``."""
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in _consecutive_runs(numbers))


def fmt_ranks(ranks: Iterable[int]) -> str:
    """The ranks of a multi-process run: ``rank 3``, ``ranks 0, 3``, ``ranks 0–7`` (runs of three or
    more as ranges), as a merged finding and the merged report's ranks table name them."""
    runs = _consecutive_runs(ranks)
    if len(runs) == 1 and runs[0][0] == runs[0][1]:
        return f"rank {runs[0][0]}"
    parts: list[str] = []
    for a, b in runs:
        parts += [f"{a}–{b}"] if b - a >= 2 else [str(r) for r in range(a, b + 1)]
    return "ranks " + ", ".join(parts)


# -- text from the user's program, for a terminal ----------------------------------------------------
# Names, paths, argv and exception messages come from the user's program. Printed raw, a control
# character could move the cursor, clear the screen, retitle the terminal or reorder text (bidi
# overrides): the terminal summary, the dashboard and watchdog's stderr lines print them through this.
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


# -- the run's headline: how the script ended, and what watchdog found --------------------------------
# Two separate things. The run's status (``run_end``'s ``status``) says only how the script ended;
# "ok" there means "exited normally", never "no problems". The headline's colour comes from the
# worst of the findings and of the ending, so a run with error findings never reads as a green OK.
RUN_OUTCOMES = {
    "ok": "completed",
    "exit": "exited with a non-zero status",
    "exception": "ended by an exception",
    "interrupted": "interrupted (Ctrl-C)",
    "terminated": "terminated (SIGTERM)",
    "stopped": "stopped by watchdog (strict)",
    "running": "in progress",
    "incomplete": "incomplete (a log ends before its run_end: a process died, or its log is damaged)",
    "created": "not started",
    "unwatched": "not watched",
}
# How bad each ending is, as a severity for the headline's colour ("ok": nothing wrong).
_OUTCOME_SEVERITY = {"ok": "ok", "running": "ok", "created": "ok", "exit": "error", "exception": "error",
                     "terminated": "error", "interrupted": "warning", "stopped": "warning",
                     "incomplete": "warning", "unwatched": "warning"}


def run_outcome(status: str | None) -> str:
    """How the script ended, in words: ``ok`` → ``completed``, ``exception`` → ``ended by an exception``."""
    return RUN_OUTCOMES.get(status or "", status or "unknown")


def fmt_finding_counts(counts: dict[str, int]) -> str:
    """``3 errors · 1 warning · 0 info``, or ``no findings``."""
    errors, warnings, info = (int(counts.get(s) or 0) for s in ("error", "warning", "info"))
    if not (errors or warnings or info):
        return "no findings"
    return (f"{errors} error{'' if errors == 1 else 's'} · {warnings} warning{'' if warnings == 1 else 's'}"
            f" · {info} info")


def run_headline(status: str | None, counts: dict[str, int]) -> tuple[str, str]:
    """The one headline every view shows: ``("run completed · 3 errors · 0 warnings · 1 info", "error")``.

    ``status`` is the run's ending (``run_end``'s status), ``counts`` the findings per severity
    (``error``/``warning``/``info``). The second item, the headline's severity (its colour), is the
    worst finding's severity or the ending's, whichever is worse: ``ok`` (green) only for a run that
    completed (or is still running) with no findings at all.
    """
    worst = "ok"
    for severity in ("info", "warning", "error"):
        if int(counts.get(severity) or 0) > 0:
            worst = severity
    ending = _OUTCOME_SEVERITY.get(status or "", "warning")
    if severity_rank(ending) > severity_rank(worst):
        worst = ending
    return f"run {run_outcome(status)} · {fmt_finding_counts(counts)}", worst


def report_written_line(report_dir: Any, findings: int) -> str:
    """The run's last line: where its report is (the HTML page when there is one) and how many findings
    (``watchdog run --quiet`` prints it without the summary, and without loading rich)."""
    html = os.path.join(os.fspath(report_dir), "report.html")
    where = html if os.path.exists(html) else os.path.join(os.fspath(report_dir), "report.json")
    return terminal_safe(f"watchdog: report written to {where} ({findings} finding{'' if findings == 1 else 's'})")
