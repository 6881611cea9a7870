"""What each rank of a multi-process run left in its folder, read back for the merge.

Each rank writes ``DIR/rank<N>/`` as a single-process run does (``events.jsonl`` flushed as it goes,
then ``report.json`` and ``report.html``), plus what its pass captures export for the cross-rank
checks (``DIR/rank<N>/served/``). A rank that died keeps the events it flushed: its record says it
did not finish, and everything it logged still counts.
"""
from __future__ import annotations

import json
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
    bytes_read: int = 0  # the size of its event log, read once
    log_read: bool = False  # its event log was there and was read

    @property
    def t_start(self) -> float | None:
        """When the rank's run started (its ``run_start`` event's time), or None."""
        return next((e.t for e in self.events if e.kind == "run_start"), None)

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

    @property
    def merge_key(self) -> tuple[str | None, int]:
        """What the ranks of one merged run share: the launch (``job``) and which watched run of each
        process it is (``watch_index``: a script may watch train() and then test())."""
        return merge_key(self.rank_info)

    def progress(self) -> tuple[int, int | None]:
        """``(epochs completed, optimizer steps)``: from ``run_end`` when the rank finished, else as
        last seen at a boundary its log recorded (a pass's start or end, an epoch's end)."""
        end = self.end
        if end is not None and isinstance(end.get("epochs"), int):
            return end["epochs"], end.get("steps") if isinstance(end.get("steps"), int) else None
        epochs, steps = 0, None
        for event in self.events:
            if event.kind not in ("epoch_end", "loader_pass_start", "loader_pass_end"):
                continue
            done = event.data.get("epochs_completed")
            seen = event.data.get("steps" if event.kind == "epoch_end" else "step")
            if isinstance(done, int) and not isinstance(done, bool):
                epochs = max(epochs, done)
            if isinstance(seen, int) and not isinstance(seen, bool):
                steps = seen if steps is None else max(steps, seen)
        return epochs, steps

    def of_kind(self, kind: str) -> Iterator[Event]:
        return (e for e in self.events if e.kind == kind)

    def findings(self) -> list[dict[str, Any]]:
        """The rank's findings, each at its last revision."""
        latest: dict[tuple[Any, Any], dict[str, Any]] = {}
        for event in self.of_kind("finding"):
            finding = {k: v for k, v in event.data.items() if k != "update"}
            latest[(finding.get("code"), finding.get("key"))] = finding
        return list(latest.values())


def merge_key(rank_info: dict[str, Any]) -> tuple[str | None, int]:
    """The merge key of a rank's ``RankInfo`` as logged: ``(job, watch_index)``."""
    index = rank_info.get("watch_index")
    return rank_info.get("job"), index if isinstance(index, int) else 0


def read_rank_record(folder: Path, rank: int) -> RankRecord:
    """The rank's whole event log, read once (the merge's only read of it)."""
    record = RankRecord(rank=rank, folder=folder)
    log = folder / EVENT_LOG_NAME
    if log.is_file():
        def count() -> None:
            record.unreadable_lines += 1
        try:
            record.bytes_read = log.stat().st_size
            record.events = list(read_events(log, on_bad_line=count))
            record.log_read = True
        except OSError:
            pass
    return record


# How much of a log's two ends ``peek_rank`` reads: its first line (run_start) and its last.
PEEK_HEAD_BYTES = 1 << 20
PEEK_TAIL_BYTES = 1 << 20


@dataclass
class RankPeek:
    """A rank's run as its log's two ends tell it: whom it belongs to and whether it ended."""

    rank: int
    folder: Path
    start: dict[str, Any] | None = None  # run_start's data
    t_start: float | None = None
    ended: bool = False  # its last complete line is run_end
    bytes_read: int = 0

    @property
    def rank_info(self) -> dict[str, Any]:
        return (self.start or {}).get("rank") or {}


def peek_rank(folder: Path, rank: int) -> RankPeek:
    """Read only the first line (``run_start``, at most ``PEEK_HEAD_BYTES``) and the last complete
    line (within the last ``PEEK_TAIL_BYTES``) of ``folder``'s log: a bounded read, whatever the
    log's size, for deciding whether every rank is done before anything is merged."""
    peek = RankPeek(rank=rank, folder=folder)
    try:
        with open(folder / EVENT_LOG_NAME, "rb") as f:
            head = f.readline(PEEK_HEAD_BYTES)
            size = f.seek(0, 2)
            f.seek(max(0, size - PEEK_TAIL_BYTES))
            tail = f.read(PEEK_TAIL_BYTES)
    except OSError:
        return peek
    peek.bytes_read = len(head) + len(tail)
    first = _event_line(head)
    if first is not None and first.get("kind") == "run_start" and isinstance(first.get("data"), dict):
        peek.start, peek.t_start = first["data"], first.get("t")
    lines = tail.split(b"\n")
    complete = lines[:-1] if not tail.endswith(b"\n") else lines
    last = next((parsed for line in reversed(complete) if line.strip()
                 for parsed in (_event_line(line),)), None)
    peek.ended = last is not None and last.get("kind") == "run_end"
    return peek


def _event_line(line: bytes) -> dict[str, Any] | None:
    try:
        raw = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        return None
    return raw if isinstance(raw, dict) else None


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
