"""Presentation probe: patches nothing in torch; attaches what shows the run to the user.

Installed last (so undone first): the live dashboard, subscribed to the run's events, and the HTML
report writer, added once to the session's report writers. A failure here switches the dashboard or
the HTML report off with an internal-error finding; it never stops the run from being watched.
"""
from __future__ import annotations

import functools
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.run import Run


def register_html_writer() -> None:
    """Add the HTML report to the report writers (idempotent)."""
    from ..core import run as session
    from .html import write_html_report

    if write_html_report not in session._extra_report_writers:
        session._extra_report_writers.append(write_html_report)


class PresentationProbe:
    name = "presentation"

    def __init__(self) -> None:
        self.dashboard = None  # the run's Dashboard, when one was attached
        self.watching_loss = True  # False once noting the loss failed: backward() passes through

    def install(self, run: "Run") -> None:
        try:
            register_html_writer()
        except Exception as exc:
            run.internal_error("html-report", exc)
        if run.options.dashboard is False:
            return  # dashboard=False / --no-dashboard: its module (and rich's live display) never loads
        try:
            from .dashboard import Dashboard

            dashboard = Dashboard.for_run(run)
            if dashboard is not None:
                run.patches.add_undo(dashboard.attach(), "dashboard")
                self.dashboard = dashboard
                if dashboard.mode in ("live", "jupyter"):
                    self._watch_loss(run, dashboard)
        except Exception as exc:
            run.internal_error("dashboard", exc)

    def _watch_loss(self, run: "Run", dashboard: Any) -> None:
        """Keep a weak reference to the tensor each backward() starts from (the loss).

        Per backward: one wrapper call and one weakref (≈0.2 µs, benchmarks/bench_dashboard.py).
        Weak, so no tensor lives longer; the dashboard's thread reads it only when it is a
        one-element CPU tensor (no device sync), and says where it is otherwise. An error here
        switches the loss display off (the wrapper passes through) and becomes a finding.
        """
        import torch

        original = torch.autograd.backward
        holder = dashboard.loss_ref
        probe = self

        @functools.wraps(original)
        def backward(*args: Any, **kwargs: Any) -> Any:
            if probe.watching_loss:
                try:
                    probe.note_loss(holder, args, kwargs)
                except Exception as exc:
                    probe.watching_loss = False
                    run.internal_error("dashboard:loss", exc)
            return original(*args, **kwargs)

        run.patches.setattr(torch.autograd, "backward", backward)

    @staticmethod
    def note_loss(holder: list, args: tuple, kwargs: dict) -> None:
        tensors = args[0] if args else kwargs.get("tensors")
        try:
            holder[0] = weakref.ref(tensors)
        except TypeError:  # a sequence of tensors: nothing to show
            holder[0] = None
