"""What each rank of a multi-process run left in its folder, read back for the merge.

Each rank writes ``DIR/rank<N>/`` as a single-process run does (``events.jsonl`` flushed as it goes,
then ``report.json`` and ``report.html``), plus what its pass captures export for the cross-rank
checks (``DIR/rank<N>/served/``). A rank that died keeps the events it flushed: its record says it
did not finish, and everything it logged still counts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..core.events import EVENT_LOG_NAME, Event, read_events

RANK_FOLDER = re.compile(r"^rank(\d+)$")


@dataclass
class RankRecord:
    """One rank's run, from its folder: its events, how it ended, where it ran."""

    rank: int
    folder: Path
    events: list[Event] = field(default_factory=list)
    unreadable_lines: int = 0

    @property
    def start(self) -> dict[str, Any]:
        """The rank's ``run_start`` data (empty when its log lost its beginning)."""
        return next((e.data for e in self.events if e.kind == "run_start"), {})

    @property
    def end(self) -> dict[str, Any] | None:
        """The rank's ``run_end`` data, or None when it never finished (killed, or still running)."""
        return next((e.data for e in reversed(self.events) if e.kind == "run_end"), None)

    @property
    def finished(self) -> bool:
        return self.end is not None

    @property
    def rank_info(self) -> dict[str, Any]:
        """The launcher's view of this rank (``core.ranks.RankInfo.to_dict()``), as logged at start."""
        return self.start.get("rank") or {}

    @property
    def job(self) -> str | None:
        return self.rank_info.get("job")

    def of_kind(self, kind: str) -> Iterator[Event]:
        return (e for e in self.events if e.kind == kind)

    def findings(self) -> list[dict[str, Any]]:
        """The rank's findings, each at its last revision."""
        latest: dict[tuple[Any, Any], dict[str, Any]] = {}
        for event in self.of_kind("finding"):
            finding = {k: v for k, v in event.data.items() if k != "update"}
            latest[(finding.get("code"), finding.get("key"))] = finding
        return list(latest.values())


def read_rank_record(folder: Path, rank: int) -> RankRecord:
    record = RankRecord(rank=rank, folder=folder)
    log = folder / EVENT_LOG_NAME
    if log.is_file():
        def count() -> None:
            record.unreadable_lines += 1
        try:
            record.events = list(read_events(log, on_bad_line=count))
        except OSError:
            pass
    return record


def rank_folders(directory: Path) -> dict[int, Path]:
    """``{rank: DIR/rank<N>}`` for each rank folder in ``directory``."""
    found: dict[int, Path] = {}
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return found
    for entry in entries:
        match = RANK_FOLDER.match(entry.name)
        if match and entry.is_dir():
            found[int(match.group(1))] = entry
    return dict(sorted(found.items()))


def read_rank_records(directory: Path) -> list[RankRecord]:
    """Every rank's record in ``directory``, by rank."""
    return [read_rank_record(folder, rank) for rank, folder in rank_folders(directory).items()]
