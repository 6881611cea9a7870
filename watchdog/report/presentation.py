"""Presentation probe: patches nothing in torch; attaches what shows the run to the user.

Installed last: the live dashboard, subscribed to the run's events; undone after the checks' finish
(so its last frame holds the findings made at the run's end), the other patches before it. A failure here
switches the dashboard off with an internal-error finding; it never stops the run from being watched.
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.run import Run


class PresentationProbe:
    name = "presentation"

    def __init__(self) -> None:
        self.dashboard = None  # the run's Dashboard, when one was attached

    def install(self, run: "Run") -> None:
        if run.options.dashboard is False:
            return  # dashboard=False / --no-dashboard: its module (and rich's live display) never loads
        try:
            from .dashboard import Dashboard

            dashboard = Dashboard.for_run(run)
            if dashboard is not None:
                run.patches.add_undo(dashboard.attach(), "dashboard", after_checks=True)
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

        holder = dashboard.loss_ref
        run.patches.hook(torch.autograd, "backward", lambda args, kwargs: self.note_loss(holder, args, kwargs),
                         on_error=lambda exc: run.internal_error("dashboard:loss", exc))

    @staticmethod
    def note_loss(holder: list, args: tuple, kwargs: dict) -> None:
        tensors = args[0] if args else kwargs.get("tensors")
        try:
            holder[0] = weakref.ref(tensors)
        except TypeError:  # a sequence of tensors: nothing to show
            holder[0] = None
