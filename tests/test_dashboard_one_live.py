"""One live display on a terminal (issue 12): the dashboard never draws while another rich Live is up."""
from __future__ import annotations

import io

from rich.console import Console
from rich.progress import Progress

from watchdog.report.dashboard import Dashboard, another_live_display


def test_a_live_display_already_up_keeps_the_dashboard_to_its_lines():
    lines = io.StringIO()
    with Progress(console=Console(file=io.StringIO(), force_terminal=True)) as progress:
        progress.add_task("the script's own bar", total=3)
        assert another_live_display()
        dashboard = Dashboard(mode="live", line_stream=lines, on_error=lambda *a: None)
        dashboard.start()
        assert dashboard.mode == "lines" and dashboard.gave_way and dashboard._live is None
        dashboard.stop()
    assert not another_live_display()


def test_a_live_display_starting_later_takes_the_panel_down_first():
    import rich.live

    original = rich.live.Live.start
    lines = io.StringIO()
    dashboard = Dashboard(mode="live", console=Console(file=io.StringIO(), force_terminal=True, width=100),
                          line_stream=lines, on_error=lambda *a: None)
    dashboard.start()
    assert dashboard._live is not None and rich.live.Live.start is not original
    with Progress(console=Console(file=io.StringIO(), force_terminal=True)):
        assert dashboard.mode == "lines" and dashboard._live is None
        assert rich.live.Live.start is original  # the watch goes with the panel
    dashboard.stop()
    assert "another live display started" in lines.getvalue()
