"""The base class of checks: event handlers in, findings out."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .findings import Finding
    from .run import Run


class Check:
    """A check subscribes to events by defining ``on_<kind>(self, event)`` methods.

    Only the handlers a check defines are dispatched (the bus precomputes them). A handler that
    raises disables the check for the rest of the run and becomes a ``watchdog/internal-error``
    finding. ``finish()`` runs once at the end of the run, before the report is written.
    """

    name: ClassVar[str] = "check"

    def __init__(self, run: "Run"):
        self.run = run

    def report(self, finding: "Finding") -> "Finding":
        """Report ``finding`` as this check's (the views group findings by ``finding.check``)."""
        finding.check = self.name
        return self.run.report(finding)

    def finish(self) -> None:
        """At the end of the run, before the report is written. Does nothing by default."""
