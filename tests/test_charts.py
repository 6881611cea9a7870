"""The HTML report's charts read as figures (issue 13 item 3): human names and units, axis titles,
a y range fitted to the data, integer ticks for counts, tick labels that never repeat; and the memory
finding tells measured bytes from estimated ones."""
from __future__ import annotations

import html
import math
import re

import pytest

from fixtures import fixture_events
from watchdog.core.format import fmt_bytes
from watchdog.memory.view import source_label
from watchdog.report.fold import RunView
from watchdog.report.html import render_html
from watchdog.report.svg import line_chart, ticks, value_axis

MiB = 1024 * 1024


def chart_parts(svg: str) -> tuple[list[str], list[str]]:
    """(the y tick labels, the axis titles) of a line chart."""
    ticks = [html.unescape(t) for t in re.findall(r'<text class="tick" [^>]*text-anchor="end">([^<]*)<', svg)]
    titles = [html.unescape(t) for t in re.findall(r'<text class="axis-title"[^>]*>([^<]*)<', svg)]
    return ticks, titles


def test_counts_get_integer_ticks():
    axis = value_axis([0, 1], integer=True)  # was "0 / 0.5 / 1 tensors"
    assert all(float(v).is_integer() for v in axis.values)
    assert axis.labels == ["0", "1"]
    axis = value_axis([74, 124, 174, 224, 274, 324], integer=True)
    assert all(float(v).is_integer() for v in axis.values) and len(set(axis.labels)) == len(axis.labels)


def test_tiny_byte_values_do_not_repeat_a_tick_label():
    axis = value_axis([0, 1], bytes_axis=True)  # was "1 B / 0 B / 0 B"
    assert axis.labels == ["0 B", "1 B"]
    axis = value_axis([3, 3], bytes_axis=True)   # flat: still distinct labels, no fraction of a byte
    assert len(set(axis.labels)) == len(axis.labels) and all(float(v).is_integer() for v in axis.values)


def test_rss_is_drawn_against_a_range_fitted_to_it_not_from_zero():
    rss = [314.5 * MiB, 315.0 * MiB, 315.4 * MiB, 316.0 * MiB, 318.9 * MiB, 319.4 * MiB]
    axis = value_axis(rss, bytes_axis=True)
    assert axis.low > 300 * MiB and axis.low <= min(rss) and axis.high >= max(rss)
    assert axis.high - axis.low < 10 * MiB
    assert all(label.endswith(" MiB") for label in axis.labels)


@pytest.mark.parametrize("bytes_axis", [False, True])
@pytest.mark.parametrize("integer", [False, True])
def test_any_range_gets_a_few_distinct_ticks_around_the_data(bytes_axis, integer):
    for lo in (0, 1, 7, 999, 1023, 1024, 5e5, 3.3e8, 1.2e10):
        for spread in (0, 0.001, 0.4, 1, 3, 17, 1000, 1e6, 5e9):
            values = [lo, lo + spread / 3, lo + spread]
            axis = value_axis(values, bytes_axis=bytes_axis, integer=integer)
            assert axis.low <= min(values) and axis.high >= max(values), (lo, spread)
            assert 2 <= len(axis.values) <= 7, (lo, spread, axis.labels)
            assert len(set(axis.labels)) == len(axis.labels), (lo, spread, axis.labels)
            if integer:
                assert all(float(v).is_integer() for v in axis.values)


def _is_nice(step: float) -> bool:
    """1, 2, 2.5 or 5 times a power of ten."""
    mantissa = step / 10 ** math.floor(math.log10(step) + 1e-12)
    return any(abs(mantissa - f) < 1e-6 for f in (1, 2, 2.5, 5))


@pytest.mark.parametrize("bytes_axis", [False, True])
@pytest.mark.parametrize("integer", [False, True])
def test_ticks_are_nice_numbers_fitted_to_the_data_over_any_span(bytes_axis, integer):
    """From a flat series to nine decades of spread, at any offset: every tick is a multiple of a
    1/2/2.5/5 x 10^k step (in the label's binary unit for bytes, whole for counts), the range hugs
    the data (at most a step beyond it either side: RSS near 300 MiB is not drawn from 0), and the
    labels read back as the tick values."""
    units = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4}
    for lo in (0, 0.3, 1, 7, 999, 1023, 1024, 5e5, 3.3e8, 1.2e10, 7.7e12):
        for spread in (0, 0.001, 0.4, 1, 3, 17, 250, 1000, 1e6, 5e9):
            if 0 < spread < lo * 1e-12:
                continue  # below a float's resolution at that value
            values = [lo + spread * f for f in (0, 0.31, 0.77, 1)]
            if integer:
                values = [round(v) for v in values]
            axis = value_axis(values, bytes_axis=bytes_axis, integer=integer)
            where = (lo, spread, axis.labels)
            scale = units[axis.unit] if bytes_axis else 1
            assert _is_nice(axis.step / scale), where
            if integer:
                assert float(axis.step / scale).is_integer(), where  # whole counts, whole units
            if bytes_axis:
                assert axis.step >= 1, where  # no tick between two bytes
            for value, label in zip(axis.values, axis.labels):
                assert abs(value / axis.step - round(value / axis.step)) < 1e-6 + 1e-12 * abs(value / axis.step), where
                number = float(label.removesuffix(f" {axis.unit}").replace(",", "")) if bytes_axis else \
                    float(label.replace(",", ""))
                assert abs(number * scale - value) <= 1e-9 * max(1.0, abs(value)), where
                if bytes_axis:
                    assert label.endswith(f" {axis.unit}"), where  # one unit on the whole axis
            low, high = min(values), max(values)
            slack = 1e-9 * max(1.0, abs(low), abs(high))
            assert axis.low - slack <= low and high <= axis.high + slack, where
            assert len(set(axis.labels)) == len(axis.labels) and 2 <= len(axis.values) <= 7, where
            if high > low:  # the range hugs the data: at most a step beyond it either side
                assert low < axis.low + axis.step + slack or axis.low == 0, where
                assert axis.high - axis.step - slack < high, where
                if low > 3 * (high - low) + 3 * axis.step:
                    assert axis.low > 0, where  # fitted, not drawn from zero


def test_tick_steps_include_two_and_a_half_and_counts_never_get_a_fraction():
    assert value_axis([0, 10]).values == [0, 2.5, 5, 7.5, 10]
    assert value_axis([0, 10], integer=True).values == [0, 5, 10]      # no 2.5 tensors
    assert value_axis([0, 100], integer=True).values == [0, 25, 50, 75, 100]
    assert value_axis([0, 10 * MiB], bytes_axis=True).labels == ["0.0 MiB", "2.5 MiB", "5.0 MiB", "7.5 MiB",
                                                                  "10.0 MiB"]
    assert value_axis([0, 3], bytes_axis=True).labels == ["0 B", "1 B", "2 B", "3 B"]


@pytest.mark.parametrize("last", [1, 2, 5, 7, 13, 30, 49, 50, 99, 365, 1000, 12345])
def test_epoch_ticks_step_by_nice_whole_numbers(last):
    at = ticks(0, last)
    step = at[1] - at[0] if len(at) > 1 else 1
    assert at[0] == 0 and _is_nice(step) and all(b - a == step for a, b in zip(at, at[1:]))
    assert len(at) <= 9 and at[-1] <= last < at[-1] + step


def test_a_line_chart_has_axis_titles_and_point_tooltips_in_the_series_unit():
    svg = line_chart([(0, 2.0), (1, 3.0), (2, 5.0)], label="live tensors", integer=True, y_title="tensors")
    ticks, titles = chart_parts(svg)
    assert titles == ["epoch", "tensors"]
    assert not any("." in t for t in ticks)
    assert "<title>epoch 2: 5</title>" in svg


def test_memory_charts_of_a_real_run_use_human_names_units_and_fitted_ranges():
    page = render_html(RunView.from_events(fixture_events("memory_leak")))
    charts = dict((m.group(1), (m.group(2), m.group(3))) for m in re.finditer(
        r'data-source="([^"]+)"><div class="title">([^<]*)</div>(.*?)</svg>', page, re.S))
    assert {name: title for name, (title, _) in charts.items()} == {
        "rss_bytes": "process RSS", "tensor_bytes": "live tensor bytes", "tensors": "live tensors",
        "graph_bytes": "graph-holding tensor bytes", "graph_tensors": "graph-holding tensors"}
    rss_ticks, rss_titles = chart_parts(charts["rss_bytes"][1])
    assert rss_titles == ["epoch (from 0)", "bytes"]
    assert not rss_ticks[0].startswith("0 ")  # RSS (~320 MiB) no longer drawn from 0
    count_ticks, count_titles = chart_parts(charts["tensors"][1])
    assert count_titles[1] == "tensors" and all(re.fullmatch(r"[\d,]+", t) for t in count_ticks)
    for _, svg in charts.values():
        ticks, _ = chart_parts(svg)
        assert len(set(ticks)) == len(ticks)


def test_device_series_are_named_for_users():
    assert source_label("cuda:0 allocated") == "CUDA allocated (cuda:0)"
    assert source_label("cuda:1 epoch_peak") == "CUDA peak allocated in the epoch (cuda:1)"
    assert source_label("nvml:0 used") == "GPU memory used (NVML) (GPU 0)"
    assert source_label("rss_bytes") == "process RSS" and source_label("rss_bytes", short=True) == "process RSS"
    assert source_label("tensor_bytes", short=True) == "tensor bytes"
    assert source_label("some.other.value") == "some.other.value"


def test_the_leak_finding_says_which_bytes_are_measured_and_which_estimated():
    events = fixture_events("memory_leak")
    first = next(e["data"] for e in events if e["kind"] == "finding" and e["data"]["code"] == "memory/tensor-growth")
    message = first["message"]
    # the census measures +12.6 KiB of tensors per epoch; the ~179 KiB of graph nodes is an estimate
    assert "+12.6 KiB/epoch in live tensors (measured)" in message
    assert re.search(r"~\+179 KiB/epoch in autograd graph nodes \(estimated", message)
    assert "~179 KiB (estimated) in 179 graph nodes" in message
    assert "+192 KiB/epoch" not in message  # the old sum, an estimate shown as a measurement
    assert "(partly estimated) more by the end of the run's last epoch (epoch 5," in message


def _line_x(svg: str, css_class: str) -> list[str]:
    return re.findall(rf'<line class="{css_class}" x1="([\d.]+)"', svg)


def _point_x(svg: str, epoch: int) -> str:
    return re.search(rf'<circle cx="([\d.]+)"[^>]*><title>epoch {epoch}: ', svg).group(1)


def test_memory_charts_mark_the_growth_baseline_and_where_the_finding_fired():
    """Read from the finding as it is (evidence.baseline_epoch, its epoch stamp), on the series it
    is about: the leak in live tensors grows from the end of epoch 0 and was found at epoch 3."""
    events = fixture_events("memory_leak")
    [leak] = [d for d in (e["data"] for e in events if e["kind"] == "finding")
              if d["code"] == "memory/tensor-growth" and not d["update"]]
    assert (leak["evidence"]["baseline_epoch"], leak["epoch"]) == (0, 3)
    page = render_html(RunView.from_events(events))
    charts = dict(re.findall(r'data-source="([^"]+)"><div class="title">[^<]*</div>\s*(.*?</svg>)', page, re.S))
    for source in ("tensors", "tensor_bytes"):
        svg = charts[source]
        assert _line_x(svg, "mark-baseline") == [_point_x(svg, 0)]
        assert _line_x(svg, "mark-found") == [_point_x(svg, 3)]
        assert re.findall(r'class="mark-label"[^>]*>([^<]*)<', svg) == ["baseline", "found"]
    for source in ("rss_bytes", "graph_bytes", "graph_tensors"):  # not what the finding is about
        assert "mark-" not in charts[source]
    # a run without a memory finding: no marks anywhere
    assert "mark-" not in render_html(RunView.from_events(fixture_events("overlap_bug")))


def test_the_memory_section_says_the_graph_nodes_are_an_estimate_it_does_not_draw():
    events = fixture_events("memory_leak")
    evidence = [e["data"]["evidence"] for e in events if e["kind"] == "finding"
                and e["data"]["code"] == "memory/tensor-growth"][-1]
    estimate = evidence["graph_node_bytes_per_epoch_estimate"]
    assert estimate > 0 and evidence["graph_saved_bytes_per_epoch"] + estimate == evidence["graph_bytes_per_epoch"]
    page = render_html(RunView.from_events(events))
    memory = html.unescape(re.sub(r"<[^>]+>", "", page.split('<section id="memory">')[1].split("</section>")[0]))
    assert (f"Not drawn: ~+{fmt_bytes(estimate)}/epoch in autograd graph nodes the new tensors keep alive, "
            "an estimate") in memory
    assert "The charts show measured values only." in memory
