"""The one formatter: sizes, counts, ranges and the severity order read the same in every report."""
from __future__ import annotations

from watchdog.core.findings import Finding, severity_at_least
from watchdog.core.format import (DASH, SEVERITIES, fmt_bytes, fmt_count, fmt_duration, fmt_int, fmt_number,
                                  fmt_ranges, fmt_rate, most_severe_first, severity_rank)

MiB = 1024 * 1024


def test_sizes_are_binary_and_say_so():
    assert fmt_bytes(512) == "512 B"
    assert fmt_bytes(100 * MiB) == "100 MiB"
    assert fmt_bytes(21 * MiB) == "21.0 MiB"
    assert fmt_bytes(80 * 1024 * MiB) == "80.0 GiB"
    assert fmt_bytes(-3 * 1024 * MiB) == "-3.0 GiB"
    assert fmt_bytes(1023) == "1023 B" and fmt_bytes(1024) == "1.0 KiB"
    assert fmt_bytes(None) == DASH and fmt_bytes(float("nan")) == DASH and fmt_bytes(True) == DASH


def test_counts_numbers_and_ranges():
    assert fmt_int(1234.4) == "1,234" and fmt_int(None) == DASH
    assert fmt_count(950) == "950" and fmt_count(12_345) == "12k" and fmt_count(1_234_567) == "1.2M"
    assert fmt_number(None) == "?" and fmt_number(0) == "0" and fmt_number(0.5) == "0.5"
    assert fmt_number(1e-3) == "1e-3" and fmt_number(2.1e-4) == "2.1e-4" and fmt_number(1234) == "1234"
    assert fmt_ranges([0, 1, 2, 4, 6, 7]) == "0–2, 4, 6–7" and fmt_ranges([]) == ""


def test_durations_and_step_rates():
    assert fmt_duration(None) == DASH and fmt_duration(0) == "00:00" and fmt_duration(247.9) == "04:07"
    assert fmt_duration(3723) == "1:02:03"
    assert fmt_rate(None) == DASH and fmt_rate(1234.4) == "1,234 steps/s" and fmt_rate(2.54) == "2.5 steps/s"
    assert fmt_rate(0.25) == "4.0 s/step" and fmt_rate(0) == "0 steps/s"


def test_one_severity_order():
    assert SEVERITIES == ("info", "warning", "error")
    assert [severity_rank(s) for s in ("ok", "info", "warning", "error")] == [0, 1, 2, 3]
    assert sorted(["info", "error", "warning"], key=most_severe_first) == ["error", "warning", "info"]
    assert severity_at_least("error", "warning") and not severity_at_least("info", "warning")
    assert not severity_at_least("error", "never")
    try:
        Finding(code="x/y", severity="fatal", message="m")
    except ValueError as exc:
        assert "fatal" in str(exc)
    else:
        raise AssertionError("an unknown severity must be refused")
