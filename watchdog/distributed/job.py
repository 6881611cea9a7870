"""The ranks of one merged run, and where each stands: finished, died, running, never started, stale.

A report directory ``DIR`` holds one folder per rank (``DIR/rank<N>/``), possibly left by different
launches: a 2-rank job after a 4-rank one leaves ``rank2/`` and ``rank3/`` of the earlier job. The
ranks merged together are those of one *merge key* (``records.merge_key``: the launcher's job and
which watched run of each process it is); every other folder is *stale*, named in the merged report
and never merged.

A rank's state is decided from what it left and, for a rank that did not finish, from its process:

- ``finished``: its log ends with ``run_end`` (its ``status`` says how: ok, exception, ...);
- ``died``: no ``run_end``, it ran on this host and its process is gone (a zombie, or a pid reused
  by a process started after the rank's run began, counts as gone);
- ``running``: no ``run_end`` and its process is alive, or it ran on another host (whose processes
  cannot be seen from here: it counts as running, never as dead);
- ``never started``: a rank below the world size with no run of this key (no folder, an empty log,
  or a folder of another job);
- ``stale``: a folder of another key.

Nothing here waits: a rank's state is read once, from its files and ``psutil``.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .records import RankPeek, RankRecord, merge_key, peek_rank, rank_folders, read_rank_record

RANK_STATES = ("finished", "died", "running", "never started", "stale")
# A rank's process started within this many seconds after its run began is another process (its pid
# was reused): the clock of psutil's create_time is coarse.
PID_REUSE_SLACK_S = 1.0


def process_state(rank_info: dict[str, Any], t_start: float | None, *, host: str | None = None) -> str:
    """``alive``, ``gone``, or ``elsewhere`` (another host: cannot be seen from here) for the process
    a rank's ``RankInfo`` names."""
    import psutil

    if rank_info.get("host") != (host or socket.gethostname()):
        return "elsewhere"
    pid = rank_info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return "gone"
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return "gone"  # killed, not yet reaped by the launcher's agent
        if t_start is not None and process.create_time() > t_start + PID_REUSE_SLACK_S:
            return "gone"  # the pid now belongs to a process started after the rank's run
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.Error:  # AccessDenied: it exists
        return "alive"
    return "alive"


ProcessState = Callable[[dict[str, Any], "float | None"], str]


@dataclass
class RankState:
    """One rank of the merged run, as the merged report names it."""

    rank: int
    state: str  # one of RANK_STATES
    folder: str | None = None  # the rank's folder name (``rank1``), None when it has none
    status: str | None = None  # how a finished rank's run ended (run_end's status)
    epochs: int = 0  # epochs completed (a rank that died: as last seen)
    steps: int | None = None  # optimizer steps (a rank that died: as last seen at a boundary)
    findings: int = 0  # its own findings
    events: int = 0  # events read from its log
    unreadable_lines: int = 0
    host: str | None = None
    pid: int | None = None
    run_id: str | None = None
    job: str | None = None

    def describe(self) -> str:
        """``finished (ok)``, ``died in epoch 1, last seen at step 8``, ``running on host-b``..."""
        if self.state == "finished":
            return f"finished ({self.status})" if self.status and self.status != "ok" else "finished"
        if self.state == "died":
            seen = f", last seen at step {self.steps}" if self.steps is not None else ""
            return f"died in epoch {self.epochs}{seen}"
        if self.state == "running":
            return f"not finished (running on {self.host})" if self.host else "not finished"
        if self.state == "never started" and self.unreadable_lines:
            lines = f"{self.unreadable_lines} unreadable line{'' if self.unreadable_lines == 1 else 's'}"
            return f"never started, or its log is damaged ({self.folder}/: no readable run start, {lines})"
        return self.state

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "state": self.state, "describe": self.describe(), "folder": self.folder,
                "status": self.status, "epochs": self.epochs, "steps": self.steps, "findings": self.findings,
                "events": self.events, "unreadable_lines": self.unreadable_lines, "host": self.host,
                "pid": self.pid, "run_id": self.run_id, "job": self.job}


@dataclass
class JobRecords:
    """The ranks of one merged run, read from ``DIR``: their records (each log read once), their
    states, and the folders of other runs (stale)."""

    directory: Path
    key: tuple[str | None, int]
    world_size: int
    records: list[RankRecord] = field(default_factory=list)  # this key's ranks, by rank
    states: list[RankState] = field(default_factory=list)  # ranks 0..world-1, then stale folders
    logs_read: int = 0
    bytes_read: int = 0

    @property
    def stale(self) -> list[RankState]:
        return [s for s in self.states if s.state == "stale"]

    @property
    def ranks(self) -> list[RankState]:
        return [s for s in self.states if s.state != "stale"]


def read_job(directory: Path, key: tuple[str | None, int] | None = None, *,
             process: ProcessState = process_state) -> JobRecords | None:
    """Every rank folder of ``directory`` read once; the ranks of ``key`` (default: the run that started
    last) are the job, the others stale. None when no folder holds a run's start."""
    directory = Path(directory)
    records = [read_rank_record(folder, rank) for rank, folder in rank_folders(directory).items()]
    started = [r for r in records if r.start]
    if not started:
        return None
    if key is None:
        key = max(started, key=lambda r: (r.t_start or 0.0, -r.rank)).merge_key
    ours = [r for r in started if r.merge_key == key]
    world = max((r.rank_info.get("world_size") or 0 for r in ours), default=0)
    world = max(world, max((r.rank + 1 for r in ours), default=0))
    job = JobRecords(directory=directory, key=key, world_size=world, records=ours,
                     logs_read=sum(1 for r in records if r.log_read),
                     bytes_read=sum(r.bytes_read for r in records))
    by_rank = {r.rank: r for r in ours}
    unread = {r.rank: r.unreadable_lines for r in records if not r.start}
    for rank in range(world):
        record = by_rank.get(rank)
        job.states.append(_state_of(record, process) if record is not None else RankState(
            rank, "never started", folder=f"rank{rank}" if (directory / f"rank{rank}").is_dir() else None,
            unreadable_lines=unread.get(rank, 0)))
    for record in records:
        if record.rank not in by_rank and (record.start or record.rank >= world):
            info = record.rank_info
            job.states.append(RankState(record.rank, "stale", folder=record.folder.name, run_id=record.start.get("run_id"),
                                        job=info.get("job"), host=info.get("host"), pid=info.get("pid"),
                                        events=len(record.events)))
    return job


def _state_of(record: RankRecord, process: ProcessState) -> RankState:
    info = record.rank_info
    epochs, steps = record.progress()
    end = record.end
    if end is not None:
        state, status = "finished", str(end.get("status") or "ok")
    else:
        state, status = ("died" if process(info, record.t_start) == "gone" else "running"), None
    return RankState(record.rank, state, folder=record.folder.name, status=status, epochs=epochs, steps=steps,
                     findings=len(record.findings()), events=len(record.events),
                     unreadable_lines=record.unreadable_lines, host=info.get("host"), pid=info.get("pid"),
                     run_id=record.start.get("run_id"), job=info.get("job"))


@dataclass
class Readiness:
    """Whether every rank of a run is done (finished or died), from the two ends of each log."""

    done: bool
    waiting: list[int] = field(default_factory=list)  # ranks still running or not started yet
    elsewhere: list[int] = field(default_factory=list)  # of those, ranks that run on another host
    bytes_read: int = 0


def readiness(directory: Path, key: tuple[str | None, int], world_size: int, own_rank: int, *,
              process: ProcessState = process_state) -> Readiness:
    """Is every rank of ``key`` finished or dead? Reads the first and last line of each rank's log
    (``peek_rank``: at most 2 MiB each, whatever the log's size) and asks ``process`` about the ranks
    that did not finish; never waits. A rank with no run of ``key`` yet may still be starting: it is
    waited for by nobody, and keeps this rank from merging (``watchdog report DIR`` merges then)."""
    result = Readiness(done=True)
    for rank in range(world_size):
        if rank == own_rank:
            continue  # this rank's own run has just ended
        peek: RankPeek = peek_rank(Path(directory) / f"rank{rank}", rank)
        result.bytes_read += peek.bytes_read
        if peek.start is not None and merge_key(peek.rank_info) == key:
            if peek.ended:
                continue
            where = process(peek.rank_info, peek.t_start)
            if where == "gone":
                continue
            if where == "elsewhere":
                result.elsewhere.append(rank)
        result.waiting.append(rank)
    result.done = not result.waiting
    return result


def merged_status(states: Sequence[RankState]) -> str:
    """The merged run's status: the first non-``ok`` ending of a finished rank (by rank), else
    ``incomplete`` when a rank did not finish, else ``ok``."""
    for state in states:
        if state.state == "finished" and state.status not in (None, "ok"):
            return str(state.status)
    if any(state.state in ("died", "running", "never started") for state in states):
        return "incomplete"
    return "ok"
