"""The merge of a multi-process run: who merges, when, and what it writes.

At the end of each rank's run (``AT_RUN_END``: its ``run_end`` logged, its log closed, its own
``DIR/rank<N>/report.*`` written), ``merge_at_rank_end(run)``:

1. asks whether every other rank of the same run (``records.merge_key``: the launch and which
   watched run of the process) is done: finished (its log ends with ``run_end``) or dead (same host,
   its process gone). It reads the first and the last line of each log (``job.readiness``) and never
   waits: a rank still running (or on another host) means "not yet", and that rank, finishing
   later, sees this one finished;
2. if every rank is done, claims the merge by creating ``DIR/.watchdog-merge-<key hash>`` with
   ``O_CREAT | O_EXCL``: of ranks finishing together, exactly one wins, and only it merges and prints;
3. the winner merges (``merge_run``): each rank's log read once (``job.read_job``), the findings
   merged with the cross-rank checks', one event stream (``merge.merged_events``), and the reporters
   write ``DIR/report.json``, ``DIR/report.html`` and print one summary.

``watchdog report DIR`` calls ``merge_run`` directly (no claim: the user asked), for a finished, a
crashed or a still-running job: what is not finished is named so.

Bound: the merge is one read of each rank's log (``O(total log size)``), the cross-rank checks over
what they read, and one render; it never waits on a process, a lock or a file that is not there.
Measured (``benchmarks/bench_merge.py``, 2 CPU cores, rendering included): 2 ranks of 2 epochs (5 KiB
of log each) in 2 ms; 8 ranks of 2,000 epochs (3.5 MiB of log each, 112,000 events) in 1.3 s; the
decision before it reads at most 2 MiB per rank (7 ms for those 8 ranks).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..core.events import EVENT_LOG_NAME
from ..core.format import terminal_safe
from .job import JobRecords, process_state, read_job, readiness
from .merge import cross_rank_checks, merge_findings, merged_events

CLAIM_PREFIX = ".watchdog-merge-"


def _say(message: str) -> None:
    """One line on stderr; nothing when stderr is closed."""
    with contextlib.suppress(Exception):
        sys.stderr.write(terminal_safe(message) + "\n")
        sys.stderr.flush()


def claim_name(key: tuple[str | None, int]) -> str:
    """The claim file's name for one merged run (a hash of its merge key)."""
    digest = hashlib.sha1(f"{key[0]}\0{key[1]}".encode("utf-8", "replace")).hexdigest()[:16]
    return CLAIM_PREFIX + digest


def try_claim(directory: Path, key: tuple[str | None, int], rank: int) -> bool:
    """Create the merge's claim file; True for the one caller that created it."""
    try:
        fd = os.open(Path(directory) / claim_name(key),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, f"rank {rank} pid {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    return True


def _forget_other_claims(directory: Path, key: tuple[str | None, int]) -> None:
    """Remove the claim files earlier runs left in ``directory`` (best effort)."""
    ours = claim_name(key)
    with contextlib.suppress(OSError):
        for entry in Path(directory).iterdir():
            if entry.name.startswith(CLAIM_PREFIX) and entry.name != ours and entry.is_file():
                with contextlib.suppress(OSError):
                    entry.unlink()


def merge_run(directory: Path, key: tuple[str | None, int] | None = None, *, merged_by: int | None = None,
              summary: bool | str = True, process: Any = process_state,
              keep_evidence: bool = False) -> tuple[JobRecords, dict[str, Any]] | None:
    """Merge the ranks of ``key``'s run (default: the run that started last) in ``directory`` into
    ``DIR/report.json`` and ``DIR/report.html``, and print its summary (``summary``: True, ``"line"``
    or False). Returns the job's records and the merged report, or None when no rank folder holds a
    run. ``keep_evidence``: raise ``MergeRefused`` rather than replace a merged report of the same job
    that holds more (``merge_drops_evidence``). Never waits; see the module's docstring for its bound."""
    from ..report.reports import write_reports

    t0 = time.perf_counter()
    job = read_job(Path(directory), key, process=process)
    if job is None:
        return None
    checks = cross_rank_checks()
    merged = merge_findings(job.records, checks)
    events = merged_events(job, merged, merged_by=merged_by, seconds=time.perf_counter() - t0, checks=checks)
    if keep_evidence:
        from ..report.jsonreport import build_report

        why = merge_drops_evidence(Path(directory) / "report.json", build_report(events))
        if why is not None:
            raise MergeRefused(why)
    report = write_reports(Path(directory), events, summary=summary, from_log=False)
    return job, report


class MergeRefused(Exception):
    """``watchdog report DIR`` would replace a merged report with one that knows less."""


def merge_drops_evidence(existing_path: Path, rebuilt: dict[str, Any]) -> str | None:
    """Why replacing the merged ``existing_path`` (report.json) of the same job with ``rebuilt`` would
    lose evidence (a finding it held, a rank whose log it read that now reads as less), if it would."""
    import json

    from ..report.rerender import findings_lost

    try:
        existing = json.loads(existing_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # nothing readable to lose
    old, new = (r.get("ranks") if isinstance(r, dict) else None for r in (existing, rebuilt))
    if not isinstance(old, dict) or not isinstance(new, dict):
        return None
    if (old.get("job"), old.get("watch_index")) != (new.get("job"), new.get("watch_index")):
        return None  # another job's report: the rank folders are this directory's evidence

    missing = findings_lost(existing, rebuilt)
    if missing:
        return f"the existing merged report.json of this job holds {missing} the rank folders no longer give"
    now = {r.get("rank"): r for r in new.get("ranks") or [] if isinstance(r, dict)}
    for rank in old.get("ranks") or []:
        if not isinstance(rank, dict) or not isinstance(rank.get("events"), int):
            continue
        after = now.get(rank.get("rank")) or {}
        if rank["events"] > (after.get("events") or 0):
            unreadable = after.get("unreadable_lines") or 0
            return (f"the existing merged report.json read {rank['events']} events of rank {rank.get('rank')}, "
                    f"its log now gives {after.get('events') or 0}"
                    + (f" ({unreadable} unreadable line{'' if unreadable == 1 else 's'})" if unreadable else ""))
    return None


def merge_at_rank_end(run: Any) -> None:
    """The run-end hook: merge the ranks if every one is done and this rank wins the claim.

    A rank of a multi-process run only (``run.rank_info``); nothing for a single process. Says one
    line when ranks are still running on other hosts (their last one merges there) and this rank
    shows the dashboard; otherwise silent unless it merges.
    """
    info = getattr(run, "rank_info", None)
    directory = getattr(run, "job_dir", None)
    if info is None or directory is None or run.report_dir.parent != directory:
        return  # one process; or this rank's folder was taken by a live run (DIR/rank<N>/run-<id>/)
    if not (run.report_dir / EVENT_LOG_NAME).is_file():
        return
    key = (info.job, info.watch_index)
    ready = readiness(directory, key, info.world_size, info.rank)
    if not ready.done:
        if ready.elsewhere and info.shows_dashboard and run.options.summary:
            from ..core.format import fmt_ranks

            _say(f"watchdog: {fmt_ranks(ready.waiting)} still running (on other hosts); the last rank to "
                f"finish writes the merged report to {directory / 'report.html'} "
                f"(or run: watchdog report {directory})")
        return
    if not try_claim(directory, key, info.rank):
        return  # another rank finishing at the same moment merges
    # A SIGTERM meanwhile (torchrun terminating the survivors once a rank died) takes effect when the
    # run's stop() ends, after this (Run's handler defers it): the merged report is never half-written.
    merge_run(directory, key, merged_by=info.rank, summary=True if run.options.summary else "line")
    _forget_other_claims(directory, key)


def holds_ranks(directory: Path) -> bool:
    """Whether ``watchdog report DIR`` should merge rank folders: ``DIR`` has ``rank<N>/`` folders with
    a run, and no log of its own newer than their newest run (a one-process run written there since);
    or rank folders and no log of its own at all (the merge then says what their logs held)."""
    from .records import peek_rank, rank_folders

    directory = Path(directory)
    folders = rank_folders(directory)
    starts = [peek.t_start or 0.0 for rank, folder in folders.items()
              if (peek := peek_rank(folder, rank)).start is not None]
    if not starts:  # rank folders whose logs hold no readable run: the merge says what it read
        return bool(folders) and not (directory / EVENT_LOG_NAME).exists()
    own = peek_rank(directory, -1)
    return own.start is None or (own.t_start or 0.0) <= max(starts)


def report_command(directory: Path) -> int:
    """``watchdog report DIR`` on a directory of rank folders: merge the run that started last.
    Returns the exit status (0; 2 when no rank folder holds a run)."""
    from .records import rank_folders

    found = rank_folders(Path(directory))
    folders = ", ".join(f"{folder.name}/" for folder in found.values())
    _say(f"watchdog report: merging the rank folders of {directory} ({folders})")
    try:
        merged = merge_run(Path(directory), merged_by=None, summary=True, keep_evidence=True)
    except MergeRefused as refused:
        _say(f"watchdog report: not merging {str(directory)!r}: {refused}. report.json and report.html "
             "there are left as they are.")
        return 2
    if merged is None:
        read = "; ".join(f"{folder.name}/{EVENT_LOG_NAME}: {_log_reading(folder)}" for folder in found.values())
        _say(f"watchdog report: no rank folder of {str(directory)!r} holds a readable run start ({read}); "
             "nothing was written")
        return 2
    return 0


def _log_reading(folder: Path) -> str:
    """How much of a rank folder's log could be read: ``no log``, ``3 lines, none readable``..."""
    from .records import read_rank_record

    record = read_rank_record(folder, -1)
    if not record.log_read:
        return "no log" if not (folder / EVENT_LOG_NAME).exists() else "cannot be read"
    lines = len(record.events) + record.unreadable_lines
    if lines == 0:
        return "empty"
    counted = f"{lines} line{'' if lines == 1 else 's'}"
    if not record.events:
        return f"{counted}, none readable"
    return f"{counted}, {record.unreadable_lines} unreadable, no run_start"
