"""Findings: what a check concluded, in the form every reporter reads.

A finding says what went wrong, where, how much (``evidence``) and the fix. Its ``code`` is
``family/name`` and stable once released; each code is documented in the README.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .format import SEVERITIES, severity_rank


def severity_at_least(severity: str, threshold: str) -> bool:
    """Whether ``severity`` reaches ``threshold`` (``"never"`` is never reached)."""
    if threshold == "never":
        return False
    return severity_rank(severity) >= severity_rank(threshold)


@dataclass
class Finding:
    """One thing watchdog found: ``run.findings`` holds them, ``report.json`` lists them.

    ``code`` is ``family/name`` (stable once released; each documented in the README),
    ``severity`` one of ``"error"``, ``"warning"``, ``"info"``; ``message`` says what, where and how
    much, ``fix`` what to change, ``evidence`` the structured facts behind it. The run stamps
    ``check`` (the check that made it), ``epoch``, ``step`` and ``time``; ``updates`` counts later
    revisions of the same finding (same ``code`` and ``key``).
    """

    code: str
    severity: str
    message: str
    fix: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    where: str | None = None
    key: str | None = None
    # The check that made the finding (``Check.report`` sets it); None for watchdog's own findings.
    check: str | None = None
    # Stamped by the run when the finding is reported.
    epoch: int | None = None
    step: int | None = None
    time: float | None = None
    updates: int = 0
    # In a multi-process run's merged report: the ranks that reported it (None on one process).
    ranks: list[int] | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")
        if "/" not in self.code:
            raise ValueError(f"finding code must be 'family/name', not {self.code!r}")

    @property
    def family(self) -> str:
        return self.code.split("/", 1)[0]

    @property
    def identity(self) -> tuple[str, str | None]:
        return (self.code, self.key)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Finding":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def __str__(self) -> str:
        return f"[{self.severity}] {self.code}: {self.message}"


class WatchdogStop(RuntimeError):
    """Raised into the training loop only when the user asked for it (``strict`` / ``--fail-on``).

    The run stops at a safe point (the end of a DataLoader pass) right after a finding at or above
    the requested severity, so no more compute is spent on a run that is known to be wrong.
    """

    def __init__(self, finding: Finding):
        self.finding = finding
        super().__init__(
            f"watchdog stopped the run: {finding.code}: {finding.message}"
            + (f" Fix: {finding.fix}" if finding.fix else "")
        )
