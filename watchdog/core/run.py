"""The watch session: ``watchdog.watch`` as a decorator or a context manager, and the ``Run`` it yields.

``Run.start()`` opens the report directory and event log, subscribes the checks and installs every
probe through one ``PatchStack``; an install that fails undoes what was installed and the loop runs
unwatched (the failure becomes a finding). ``Run.stop()`` closes open DataLoader passes, undoes every
patch in reverse order, lets each check finish, and writes ``report.json`` from the event log. It runs
on normal exit, on exceptions, ``KeyboardInterrupt``, ``SystemExit`` and SIGTERM (handled, then
re-sent, as coverage.py does). The user's exception always comes out unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import os
import platform
import shutil
import signal
import sys
import threading
import time
import traceback
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, TypeVar, overload

from .._version import __version__
from .events import EVENT_LOG_NAME, REPORT_EVENT_KINDS, Event, EventBus, EventLog, UnknownEventKind, read_events
from .findings import SEVERITIES, Finding, WatchdogStop, severity_at_least
from .format import most_severe_first, terminal_safe
from .gcpause import gc_paused
from .patching import PatchStack
from .redact import redact_argv
from . import registry
from .loop import LoopState
from .ranks import RankInfo
from .threads import BackgroundThread

DEFAULT_REPORT_DIR = "watchdog-report"
REPORT_FILES = ("report.json", EVENT_LOG_NAME, "report.html")
FAIL_ON_CHOICES = ("never", "warning", "error")


class WatchdogUsageError(ValueError):
    """A bad argument to watchdog itself (never raised from inside the training loop)."""


class WatchdogStartError(Exception):
    """Watching cannot start (the report directory is unusable): the loop then runs unwatched."""


StopAt = Literal["error", "warning"]
FailOn = Literal["never", "warning", "error"]
CheckpointVerify = Literal["first", "every", "off"]


@dataclass
class WatchOptions:
    """The options of one watched run, as given to ``watchdog.watch(...)`` (``run.options``).

    Each field is the ``watch`` keyword of the same name, with the same default; see ``watch`` for
    what each does. A bad value raises ``WatchdogUsageError``.
    """

    report_dir: str | os.PathLike[str] | None = None
    dashboard: bool | None = None  # None: on when stdout is a terminal
    strict: bool | StopAt = False  # True or "error": stop at the first error finding; "warning" too
    fail_on: FailOn = "never"  # the CLI's exit status: "never" | "warning" | "error"
    eval_every: int = 1  # expected evaluation cadence, in epochs
    fingerprint: bool = False  # hash sample contents to catch duplicates across dataset objects
    summary: bool = True  # print the terminal summary at the end
    checkpoint_verify: CheckpointVerify = "first"  # read checkpoints back: "first" | "every" | "off"
    # Under torchrun: ranks other than local rank 0 of node 0 print their epoch lines and their own
    # summary too (None: $WATCHDOG_RANK_LINES, off unless "1"/"true"/"yes").
    rank_lines: bool | None = None
    # Settings for watchdog's own parts and tests (not a ``watch`` option; none is stable).
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.report_dir is not None and not isinstance(self.report_dir, (str, os.PathLike)):
            raise WatchdogUsageError(
                f"watchdog.watch(report_dir={self.report_dir!r}): expected a directory path (str or Path)"
            )
        if self.strict not in (True, False, "error", "warning"):
            raise WatchdogUsageError(
                f"watchdog.watch(strict={self.strict!r}): use True (stop at the first error), 'warning', or False"
            )
        if self.fail_on not in FAIL_ON_CHOICES:
            raise WatchdogUsageError(f"fail_on={self.fail_on!r}: choose one of {', '.join(FAIL_ON_CHOICES)}")
        if not isinstance(self.eval_every, int) or isinstance(self.eval_every, bool) or self.eval_every < 1:
            raise WatchdogUsageError(f"watchdog.watch(eval_every={self.eval_every!r}): expected a whole number >= 1")
        if self.rank_lines not in (None, True, False):
            raise WatchdogUsageError(f"watchdog.watch(rank_lines={self.rank_lines!r}): expected True or False")
        if self.checkpoint_verify not in ("first", "every", "off"):
            raise WatchdogUsageError(
                f"watchdog.watch(checkpoint_verify={self.checkpoint_verify!r}): choose 'first', 'every' or 'off'"
            )

    @property
    def stop_threshold(self) -> str | None:
        """The least severity that stops a ``strict`` run (``"error"``, ``"warning"``), or None."""
        if self.strict is True:
            return "error"
        return self.strict or None

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-safe data (``run_start``'s ``options``)."""
        data = asdict(self)
        data["report_dir"] = str(self.report_dir) if self.report_dir is not None else None
        return data


RANK_LINES_ENV = "WATCHDOG_RANK_LINES"


def rank_lines_from_env(environ: Any = None) -> bool:
    """``$WATCHDOG_RANK_LINES`` as a switch: on for ``1``, ``true``, ``yes`` (any case)."""
    value = (os.environ if environ is None else environ).get(RANK_LINES_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


_active_run: "Run | None" = None
_runs_in_process = itertools.count()  # numbers each Run of this process (RankInfo.watch_index)
_active_lock = threading.RLock()


def current_run() -> "Run | None":
    """The run being watched in this process, if any."""
    return _active_run


class Run:
    """One watched run, as ``with watchdog.watch() as run:`` yields it; readable after the block.

    What you read (stable):

    - ``findings``: the findings, most severe first (``Finding``: ``code``, ``severity``,
      ``message``, ``fix``, ``evidence``, ``where``...); ``findings_at_least("warning")``.
    - ``status``: how the script ended, not whether watchdog found anything: ``"running"``, then
      ``"ok"`` (it ended normally), ``"exception"``, ``"interrupted"``, ``"terminated"``,
      ``"stopped"`` (``strict``), ``"exit"`` (a non-zero ``sys.exit``); ``"unwatched"`` when
      watching could not start.
    - ``report_dir``, ``report_json``, ``report_html``: where the report is.
    - ``run_id``, ``options`` (``WatchOptions``), ``loop`` (the loop's state as watchdog saw it:
      ``loop.epoch``, ``loop.steps``...; read-only).

    For watchdog's own parts (probes, checks, views), not a stable API: ``emit``, ``report``,
    ``internal_error``, ``is_disabled``, ``disabled``, ``take_pending_stop``, ``add_boundary``, ``background``,
    ``patches``, ``bus``, ``log``, ``checks``, ``probes``, ``argv``, ``pid``, ``start_metadata``,
    ``shared_report_dir``, ``rank_info``, ``job_dir``, ``rank_lines``, ``start``, ``stop``,
    ``mark_epoch`` and ``fails``. (They keep their names because every feature calls them; a user calls ``watchdog.mark_epoch()``, not ``run.mark_epoch()``.)
    """

    def __init__(self, options: WatchOptions, argv: list[str] | None = None):
        self._options = options
        # Whether this rank prints its epoch lines and own summary though it is not the dashboard's
        # (resolved once; run_start's ``rank_lines`` says it, for the views).
        self.rank_lines = rank_lines_from_env() if options.rank_lines is None else bool(options.rank_lines)
        self.argv = [_argv_text(a) for a in (sys.argv if argv is None else argv)]
        self.pid = os.getpid()
        self._run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{self.pid}"
        self._report_dir = Path(options.report_dir or os.environ.get("WATCHDOG_REPORT_DIR") or DEFAULT_REPORT_DIR)
        # Under torchrun: one report per process, in DIR/rank<N>/; the last rank to finish merges the
        # ranks into DIR/report.json (the run-end hooks: distributed/).
        self.rank_info = RankInfo.from_env(watch_index=next(_runs_in_process))
        self.job_dir: Path | None = None  # DIR, under which DIR/rank<N>/ is this rank's (None on one process)
        if self.rank_info is not None:
            self.job_dir = self.report_dir
            self._report_dir = self.report_dir / self.rank_info.folder_name
        self.patches = PatchStack()
        self.bus = EventBus(self._handler_failed, registry.event_kinds())
        self.log: EventLog | None = None
        self._status = "created"
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._lock = threading.RLock()
        self._findings: dict[tuple[str, str | None], Finding] = {}
        self.checks: list[Any] = []
        self.probes: list[Any] = []
        self.disabled: set[str] = set()
        self._depth = 0
        self._archived_to: Path | None = None
        # The run's threads (BackgroundThread, join timeout): joined once its reports are written.
        self._background: list[tuple[BackgroundThread, float | None]] = []
        # The loop's state: written only by the loop probes, read by everyone (core/loop.py).
        self._loop = LoopState(self.emit, self.internal_error)
        self._boundaries: list[Callable[[], Any]] = []
        self._pending_stop: WatchdogStop | None = None
        self._stop_raised = False
        self._previous_sigterm: Any = None
        self._stopping = False  # stop() in progress
        self._sigterm_during_stop = False  # a SIGTERM came while stop() ran: re-sent at its end
        self._report_events: list[Event] = []  # the events report.json is built from
        self._event_log_reported = False
        self._event_log_lost = 0
        self._dir_lock: ReportDirLock | None = None
        self.shared_report_dir: dict[str, Any] | None = None  # set when a live run held report_dir
        self.start_metadata: dict[str, Any] = {}  # the run_start event's data (argv redacted)

    # -- what users read ----------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        """This run's id: its start time and pid (``20240131-142502-4242``), as in ``report.json``."""
        return self._run_id

    @property
    def options(self) -> WatchOptions:
        """The options this run was started with."""
        return self._options

    @property
    def status(self) -> str:
        """How the script ended (``"ok"``: normally); never whether watchdog found anything."""
        return self._status

    @property
    def loop(self) -> LoopState:
        """The loop's state as watchdog saw it (read-only properties: ``epoch``, ``steps``, ...)."""
        return self._loop

    @property
    def report_dir(self) -> Path:
        """The directory of this run's report (``DIR/run-<id>/`` when a live run held the one asked for)."""
        return self._report_dir

    @property
    def report_json(self) -> Path:
        """``report_dir/report.json``: the findings as data (written when the run ends)."""
        return self._report_dir / "report.json"

    @property
    def report_html(self) -> Path:
        """``report_dir/report.html``: the report to read, with charts (written when the run ends)."""
        return self._report_dir / "report.html"

    # -- findings ------------------------------------------------------------------------------------
    @property
    def findings(self) -> list[Finding]:
        """The findings so far, most severe first, then oldest first."""
        return sorted(self._findings.values(), key=lambda f: (most_severe_first(f.severity), f.time or 0.0))

    def findings_at_least(self, severity: str) -> list[Finding]:
        """The findings of ``severity`` or worse (``"info"`` < ``"warning"`` < ``"error"``)."""
        return [f for f in self.findings if severity_at_least(f.severity, severity)]

    def report(self, finding: Finding) -> Finding:
        """Add a finding, or update the earlier one with the same ``(code, key)``."""
        with self._lock:
            existing = self._findings.get(finding.identity)
            if existing is not None:
                if (existing.message, existing.evidence, existing.severity) == (
                    finding.message, finding.evidence, finding.severity):
                    return existing
                existing.message, existing.evidence, existing.fix = finding.message, finding.evidence, finding.fix
                existing.severity, existing.where = finding.severity, finding.where or existing.where
                existing.updates += 1
                self.emit("finding", {**existing.to_dict(), "update": True})
                current = existing
            else:
                finding.epoch = self.loop.user_epoch if finding.epoch is None else finding.epoch
                finding.step = self.loop.steps if finding.step is None else finding.step
                finding.time = time.time()
                self._findings[finding.identity] = finding
                self.emit("finding", {**finding.to_dict(), "update": False})
                current = finding
            threshold = self.options.stop_threshold
            if threshold and not self._stop_raised and self._pending_stop is None and severity_at_least(
                    current.severity, threshold) and self.status == "running":
                self._pending_stop = WatchdogStop(current)
            return current

    def take_pending_stop(self) -> WatchdogStop | None:
        """The ``WatchdogStop`` to raise at this safe point, once per run."""
        stop, self._pending_stop = self._pending_stop, None
        if stop is not None:
            self._stop_raised = True
        return stop

    def internal_error(self, component: str, exc: BaseException) -> None:
        """Switch ``component`` off and say so; never raises."""
        try:
            if component in self.disabled:
                return
            self.disabled.add(component)
            frames = traceback.extract_tb(exc.__traceback__)[-4:]
            self.report(Finding(
                code="watchdog/internal-error",
                severity="warning",
                message=f"watchdog's {component} failed and was switched off for the rest of this run "
                        f"({type(exc).__name__}: {exc}); the training loop was not affected.",
                fix="Nothing to change in your code; please report this with the evidence below.",
                evidence={"component": component, "exception": type(exc).__name__, "detail": str(exc)[:500],
                          "traceback": [f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in frames]},
                key=component,
            ))
            check = component.partition(":")[2] if component.startswith("check:") else None
            self.emit("check_disabled", {"check": component, "disables": check,
                                         "error": f"{type(exc).__name__}: {exc}"[:500]})
        except Exception:
            pass

    def is_disabled(self, component: str) -> bool:
        """Whether ``component`` (``"probe:memory"``, ``"check:overlap"``) was switched off."""
        return component in self.disabled

    def _handler_failed(self, owner: Any, exc: BaseException) -> None:
        from .check import Check

        if isinstance(owner, Check):
            component = f"check:{owner.name}"
        elif hasattr(owner, "install"):  # a probe subscribed to an event (the memory probe's epoch_end)
            component = f"probe:{getattr(owner, 'name', type(owner).__name__)}"
        else:  # a listener: the dashboard's bound on_event, say
            component = f"listener:{getattr(owner, '__qualname__', None) or type(owner).__name__}"
        self.internal_error(component, exc)

    # -- events --------------------------------------------------------------------------------------
    def emit(self, kind: str, data: dict[str, Any], refs: dict[str, Any] | None = None) -> Event:
        """Log an event and dispatch it to the checks (``data`` JSON-safe; ``refs`` live objects)."""
        if kind not in self.bus.kinds:
            raise UnknownEventKind(f"watchdog emitted {kind!r}, an event kind no feature declares")
        event = Event(kind, data, refs)
        with self._lock:
            if self.log is not None:
                try:
                    self.log.write(event)
                except Exception as exc:  # a full disk must not stop training; the log reopens
                    self._event_log_failed(exc)
            if kind in REPORT_EVENT_KINDS:
                self._report_events.append(Event(kind, data, None, event.t))
            self.bus.dispatch(event)
        return event

    def _event_log_failed(self, exc: BaseException) -> None:
        """Say once that events.jsonl misses lines; report.json is built from memory regardless."""
        if self._event_log_reported:
            return
        self._event_log_reported = True
        path = self.log.path if self.log is not None else self.report_dir / EVENT_LOG_NAME
        self.report(Finding(
            code="watchdog/event-log-write-failed",
            severity="warning",
            message=f"watchdog could not write to its event log {str(path)!r} ({type(exc).__name__}: {exc}); "
                    "it retries at each later event. report.json holds everything the run saw, but the "
                    "event log (and so report.html and `watchdog report`) misses the lines that failed.",
            fix="Free space on that disk, or choose another report directory (report_dir=... / --report-dir).",
            evidence={"path": str(path), "exception": type(exc).__name__, "detail": str(exc)[:500]},
        ))

    def background(self, target: Callable[..., Any], name: str, args: tuple[Any, ...] = (),
                   join_timeout: float | None = None) -> BackgroundThread:
        """Run ``target(*args)`` on a daemon thread of this run's, started without waiting for it to be
        scheduled (``core/threads.py``). The run joins it (at most ``join_timeout`` seconds) once its
        reports are written, before it releases the report directory: whoever started it makes it
        end by then (the memory sampler is halted when the probes finish)."""
        thread = BackgroundThread(target, name, args).start()
        self._background.append((thread, join_timeout))
        return thread

    def _join_background(self) -> None:
        while self._background:
            thread, timeout = self._background.pop(0)
            with contextlib.suppress(Exception):
                thread.join(timeout)

    def add_boundary(self, fn: Callable[[], Any]) -> None:
        """``fn`` runs at safe points (epoch marks, run end); it may return a pending stop."""
        self._boundaries.append(fn)

    def _run_boundaries(self) -> None:
        for fn in self._boundaries:
            try:
                fn()
            except Exception as exc:
                self.internal_error("boundary", exc)

    # -- epochs ----------------------------------------------------------------------------------------
    def mark_epoch(self) -> None:
        """The user's explicit epoch boundary (``watchdog.mark_epoch()``): the run's boundaries run,
        the epoch ends (the rule is ``LoopState.mark_epoch``), and a pending ``strict`` stop is raised."""
        self.loop.mark_epoch(before_epoch_end=self._run_boundaries)
        stop = self.take_pending_stop()
        if stop is not None:
            raise stop

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> "Run":
        """Open the report directory, subscribe the checks and install the probes (``watch`` calls it)."""
        self._status = "running"
        self._started_at = time.time()
        start_metadata = self._start_metadata()
        self._open_report_dir()
        if self.shared_report_dir is not None:
            start_metadata["shared_report_dir"] = self.shared_report_dir
        self.start_metadata = start_metadata  # as logged: argv redacted (the dashboard starts from it)
        self.emit("run_start", start_metadata)
        for check_class in registry.all_checks():
            try:
                check = check_class(self)
                self.checks.append(check)
                self.bus.subscribe(check)
            except Exception as exc:
                self.internal_error(f"check:{getattr(check_class, 'name', check_class.__name__)}", exc)
        try:
            for probe_class in registry.all_probes():
                probe = probe_class()
                probe.install(self)
                self.probes.append(probe)
        except Exception as exc:
            # Install failed half-way: undo what was installed, run unwatched, say why.
            self.patches.undo_all()
            self.probes.clear()
            self.internal_error(f"probe:{getattr(probe_class, 'name', probe_class.__name__)}", exc)
        try:
            self._install_sigterm_handler()
        except Exception as exc:
            self.internal_error("sigterm-handler", exc)
        return self

    def _abandon_start(self) -> None:
        """Undo a start that could not complete: the loop runs unwatched. Never raises."""
        self._status = "unwatched"
        with contextlib.suppress(Exception):
            self.patches.undo_all()
        with contextlib.suppress(Exception):
            self._restore_sigterm_handler()
        log, self.log = self.log, None
        if log is not None:
            with contextlib.suppress(Exception):
                log.discard()
        self._release_report_dir()

    def stop(self, exc: BaseException | None = None, status: str | None = None) -> None:
        """End the run: close passes, undo patches, finish checks, write the report.

        Every step runs even when one before it failed (each failure is a finding); watchdog's own
        errors never come out. A Ctrl-C or SystemExit during teardown is raised once all is undone.
        """
        if self.status not in ("running",):
            return
        self._stopping = True  # a SIGTERM from now on takes effect once the report is written
        self._status = status or _status_for(exc)
        interrupted: BaseException | None = None  # Ctrl-C / SystemExit mid-teardown: raised once all is undone
        # Each step runs whatever the one before it did; the second undo pass catches what the
        # first could not reach (it raised before popping anything) and anything armed since.
        # The display (the dashboard) stays until the checks have finished: its last frame shows the
        # findings they make at the end, as the summary below it does.
        for step in (self._close_probes, self._undo_torch_patches, self._finish_checks, self._undo_patches):
            try:
                step()
            except Exception as error:
                self.internal_error("shutdown", error)
            except BaseException as error:
                interrupted = interrupted or error
        self._ended_at = time.time()
        try:
            end = self._end_metadata(exc)
        except Exception as error:  # the run still ends in the log, with what is sure
            self.internal_error("shutdown:run-end", error)
            end = {"status": self.status, "epochs": self.loop.epoch, "steps": self.loop.steps}
        with contextlib.suppress(Exception):
            self.emit("run_end", end)
        log, self.log = self.log, None
        if log is not None:
            self._event_log_lost = log.lost
            with contextlib.suppress(Exception):
                log.close()
        try:
            self._write_reports()
        except Exception as error:
            say(f"watchdog: could not write the report to {self.report_dir}: {error}")
        finally:
            self._release_report_dir()
        try:
            self._run_end_hooks()
        except BaseException as error:  # Ctrl-C while merging: raised like one during teardown
            interrupted = interrupted or error
        self._stopping = False
        with contextlib.suppress(Exception):
            self._restore_sigterm_handler()
        if self._sigterm_during_stop:
            # A launcher terminating the job (torchrun, once another rank died) while this run wrote
            # its report and merged: the signal's default action, now that they are written.
            self._sigterm_during_stop = False
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGTERM)
        if interrupted is not None:
            raise interrupted

    def _close_probes(self) -> None:
        self._run_boundaries()
        for probe in self.probes:
            finish = getattr(probe, "finish", None)
            if finish is not None:
                try:
                    finish()
                except Exception as exc:
                    self.internal_error(f"probe:{probe.name}", exc)

    def _undo_torch_patches(self) -> None:
        self._undo_patches(keep_after_checks=True)

    def _undo_patches(self, keep_after_checks: bool = False) -> None:
        interrupted = None
        for undo, error in self.patches.undo_all(keep_after_checks):
            if isinstance(error, Exception):
                self.internal_error(f"undo:{undo.description}", error)
            else:
                interrupted = interrupted or error
        if interrupted is not None:
            raise interrupted

    def _finish_checks(self) -> None:
        for check in list(self.checks):
            if f"check:{check.name}" in self.disabled:
                continue
            try:
                check.finish()
            except Exception as exc:
                self.internal_error(f"check:{check.name}", exc)

    def _write_reports(self) -> None:
        """report.json from the events the run kept (everything it saw, whatever reached the disk),
        report.html from the log, and the terminal summary: written by the reporters (registry).

        A rank of a multi-process run prints its own summary only when asked (``rank_lines``): the
        job's one summary is the merged one (``_run_end_hooks``)."""
        summary = self.options.summary and (self.rank_info is None or self.rank_lines)
        registry.write_reports(self.report_dir, self._report_events, lost_lines=self._event_log_lost,
                               summary=summary, archived_to=self._archived_to)

    def _run_end_hooks(self) -> None:
        """The features' run-end hooks (``AT_RUN_END``: the ranks' merge), once the log is closed and
        the report written. Each is bounded by its feature and never raises out of here."""
        for hook in registry.run_end_hooks():
            try:
                hook(self)
            except Exception as error:
                say(f"watchdog: {getattr(hook, '__qualname__', hook)} failed at the run's end "
                    f"({type(error).__name__}: {error})")

    # -- report directory ----------------------------------------------------------------------------
    def _open_report_dir(self) -> None:
        """Open this run's event log; archive an earlier report only once nothing else can fail."""
        directory = self.report_dir
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WatchdogStartError(
                f"cannot create the report directory {str(directory)!r}: {exc.strerror or exc}. "
                "Choose a writable place with report_dir=... or --report-dir DIR."
            ) from None
        if not os.access(directory, os.W_OK):
            raise WatchdogStartError(
                f"cannot write to the report directory {str(directory)!r}. "
                "Choose a writable place with report_dir=... or --report-dir DIR."
            )
        directory = self._lock_report_dir(directory)
        try:
            log = EventLog.prepare(directory / EVENT_LOG_NAME)
        except OSError as exc:
            raise WatchdogStartError(
                f"cannot open the event log in {str(directory)!r}: {exc.strerror or exc}"
            ) from None
        try:
            self._archived_to = archive_previous_report(directory, prune=False)
            log.commit()
        except BaseException:
            log.discard()
            raise
        self.log = log
        if self._archived_to is not None and previous_reports_to_prune(self._archived_to.parent):
            self.background(prune_previous_reports, "watchdog-prune-previous", (self._archived_to.parent,))

    def _lock_report_dir(self, directory: Path) -> Path:
        """Hold ``directory``'s lock for this run; if a live run holds it, use ``DIR/run-<id>/``.

        The lock is an advisory ``flock`` on ``DIR/.watchdog.lock`` (which names the holder's pid):
        the kernel drops it when its process dies, so a crashed run's lock is taken over as is.
        """
        try:
            self._dir_lock, holder = ReportDirLock.try_acquire(directory)
            if self._dir_lock is not None:
                return directory
            own = directory / f"run-{_safe_name(self.run_id)}"
            own.mkdir()
            self._dir_lock, _ = ReportDirLock.try_acquire(own)
        except OSError as exc:
            raise WatchdogStartError(
                f"cannot lock the report directory {str(directory)!r}: {exc.strerror or exc}"
            ) from None
        who = f"pid {holder}" if holder else "another process"
        self.shared_report_dir = {"dir": str(directory), "held_by_pid": holder, "report_dir": str(own)}
        say(f"watchdog: {str(directory)!r} is in use by a running watchdog run ({who}); "
            f"this run's report goes to {str(own)!r}")
        self._report_dir = own
        return own

    def _release_report_dir(self) -> None:
        self._join_background()  # done while the directory is still this run's (the pruning)
        lock, self._dir_lock = self._dir_lock, None
        if lock is not None:
            with contextlib.suppress(Exception):
                lock.release()

    # -- metadata ------------------------------------------------------------------------------------
    def _start_metadata(self) -> dict[str, Any]:
        import numpy
        import torch

        return {
            "run_id": self.run_id,
            "watchdog": __version__,
            "argv": redact_argv(self.argv),
            "cwd": _cwd(),
            "pid": self.pid,
            "rank": self.rank_info.to_dict() if self.rank_info is not None else None,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "platform": platform.platform(),
            "started_at": _iso(self._started_at),
            "options": self.options.to_dict(),
            "checks": [check_class.name for check_class in registry.all_checks()],
            **({"rank_lines": self.rank_lines} if self.rank_info is not None else {}),
        }

    def _end_metadata(self, exc: BaseException | None) -> dict[str, Any]:
        return {
            "status": self.status,
            "ended_at": _iso(self._ended_at),
            "seconds": round((self._ended_at or time.time()) - (self._started_at or time.time()), 3),
            "epochs": self.loop.epoch,
            "steps": self.loop.steps,
            "epoch_source": self.loop.epoch_source,
            "exception": None if exc is None or isinstance(exc, SystemExit) else type(exc).__name__,
            "devices": _devices(),
            "optimizers": [{"name": o.label, "type": o.type_name, "steps": o.steps} for o in self.loop.optimizers.values()],
            "models": [{"name": m.label, "type": m.type_name} for m in self.loop.models.values()],
            "loaders": [info.to_dict() for info in self.loop.loaders.values()],
            "disabled": sorted(self.disabled),
        }

    # -- SIGTERM ---------------------------------------------------------------------------------------
    def _install_sigterm_handler(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            previous = signal.getsignal(signal.SIGTERM)
        except (ValueError, OSError):
            return
        if previous not in (signal.SIG_DFL, None):
            return  # the program handles SIGTERM itself; its exit goes through our normal stop path

        def on_sigterm(signum: int, frame: Any) -> None:
            if os.getpid() == self.pid:
                if self._stopping:  # stop() runs below this frame: it re-sends the signal when done
                    self._sigterm_during_stop = True
                    return
                with contextlib.suppress(Exception):
                    self.stop(status="terminated")
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_sigterm)
        self._previous_sigterm = (on_sigterm, previous)

    def _restore_sigterm_handler(self) -> None:
        if self._previous_sigterm is None or threading.current_thread() is not threading.main_thread():
            return
        ours, previous = self._previous_sigterm
        self._previous_sigterm = None
        if signal.getsignal(signal.SIGTERM) is ours:
            signal.signal(signal.SIGTERM, previous)

    # -- exit status ---------------------------------------------------------------------------------
    def fails(self, threshold: str | None = None) -> bool:
        """Whether a finding reaches ``threshold`` (default ``options.fail_on``): the CLI's exit status."""
        threshold = threshold or self.options.fail_on
        return any(severity_at_least(f.severity, threshold) for f in self._findings.values())

    def __repr__(self) -> str:
        counts = {s: sum(1 for f in self._findings.values() if f.severity == s) for s in SEVERITIES}
        return f"<watchdog.Run {self.run_id} {self.status} epochs={self.loop.epoch} steps={self.loop.steps} findings={counts}>"




def _argv_text(arg: Any) -> str:
    """An argv entry as text (programs put ``pathlib.Path`` objects in ``sys.argv`` too)."""
    if isinstance(arg, str):
        return arg
    try:
        return os.fsdecode(arg) if isinstance(arg, (bytes, os.PathLike)) else str(arg)
    except Exception:
        return f"<{type(arg).__name__}>"


def _cwd() -> str | None:
    """The working directory, or None when it was deleted."""
    try:
        return os.getcwd()
    except OSError:
        return None


def describe_start_failure(exc: BaseException) -> str:
    if isinstance(exc, WatchdogStartError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return f"{type(exc).__name__}: {exc}"


def say(message: str) -> None:
    """One line on stderr for the user; nothing when stderr is closed, None or on a full disk."""
    try:
        stream = sys.stderr
        if stream is not None:
            stream.write(terminal_safe(message) + "\n")
            stream.flush()
    except Exception:
        pass


def _status_for(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, SystemExit):
        return "ok" if exc.code in (None, 0) else "exit"
    if isinstance(exc, WatchdogStop):
        return "stopped"
    return "exception"


def _iso(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f"{t % 1:.3f}"[1:]


def _devices() -> dict[str, Any]:
    import torch

    devices: dict[str, Any] = {"cpu_count": os.cpu_count()}
    try:
        if torch.cuda.is_initialized():  # never initialise CUDA ourselves
            devices["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:
        pass
    return devices


class ReportDirLock:
    """An exclusive advisory lock on a report directory, held by the run writing there."""

    NAME = ".watchdog.lock"

    def __init__(self, fd: int | None):
        self._fd = fd

    @classmethod
    def try_acquire(cls, directory: Path) -> "tuple[ReportDirLock | None, int | None]":
        """``(lock, None)``, or ``(None, holder pid)`` when a live process holds it."""
        try:
            import fcntl
        except ImportError:  # no flock (Windows): no protection, as before
            return cls(None), None
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(directory / cls.NAME, flags, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                os.close(fd)
                return None, int(text) if text.isdigit() else None
            # The holder's pid, then the file cut to its length: never truncated to zero first, as
            # ext4 flushes a file truncated to zero and rewritten when it is closed (auto_da_alloc:
            # ~0.3-3 ms at every start); a reader sees the old pid or ours.
            pid = f"{os.getpid()}\n".encode()
            os.pwrite(fd, pid, 0)
            os.ftruncate(fd, len(pid))
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        return cls(fd), None

    def release(self) -> None:
        """Unlock (for forked workers sharing the descriptor too) and close. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _safe_name(text: str) -> str:
    """A run id read from an old log, usable as one directory name (no separators, no '..')."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:100].strip(".")
    return name or "run"


# Earlier reports kept in DIR/previous/: archiving one more removes the oldest beyond this many.
KEEP_PREVIOUS_RUNS = 10


def prune_previous_reports(previous: Path, keep: int = KEEP_PREVIOUS_RUNS) -> list[Path]:
    """Remove the oldest archived reports in ``previous`` beyond the newest ``keep``; returns what went.

    Only folders as watchdog archives them (report files and nothing else, no links) are counted and
    removed: whatever else the user put in ``previous/`` stays. Never raises.
    """
    archived: list[tuple[int, str, Path]] = []
    try:
        folders = _folders_in(previous)
        if len(folders) <= keep:  # at most ``keep`` folders of any kind: nothing to remove
            return []
        for entry in folders:
            with os.scandir(entry.path) as listing:
                files = list(listing)
            if files and all(f.name in REPORT_FILES and f.is_file(follow_symlinks=False) for f in files):
                archived.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name, Path(entry.path)))
    except OSError:
        return []
    archived.sort()
    removed = [entry for _, _, entry in archived[:max(0, len(archived) - keep)]]
    for entry in removed:
        shutil.rmtree(entry, ignore_errors=True)
    return removed


def _folders_in(directory: Path) -> list[os.DirEntry[str]]:
    """The folders in ``directory`` (never a link to one)."""
    with os.scandir(directory) as entries:
        return [entry for entry in entries if entry.is_dir(follow_symlinks=False)]


def previous_reports_to_prune(previous: Path, keep: int = KEEP_PREVIOUS_RUNS) -> bool:
    """Whether ``previous`` holds more than ``keep`` folders (archived reports or not): only then may
    ``prune_previous_reports`` remove any. A run prunes on a thread of its own (``Run.background``):
    removing a folder can take milliseconds (a disk mounted with ``discard``), which the training
    then does not wait for."""
    try:
        return len(_folders_in(previous)) > keep
    except OSError:
        return False


def archive_previous_report(directory: Path, prune: bool = True) -> Path | None:
    """Move an earlier run's report files into ``directory/previous/<its run id>/``; never overwrite.

    The newest ``KEEP_PREVIOUS_RUNS`` archived reports are kept, older ones removed (``prune=False``:
    left to the caller: a run prunes on a thread of its own, ``previous_reports_to_prune``).
    """
    present = [name for name in REPORT_FILES if (directory / name).exists()]
    if not present:
        return None
    run_id = None
    with contextlib.suppress(Exception):
        first = next(read_events(directory / EVENT_LOG_NAME))
        run_id = first.data.get("run_id")
    if not run_id:
        newest = max((directory / name).stat().st_mtime for name in present)
        run_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(newest))
    previous = directory / "previous"
    if os.path.lexists(previous) and (previous.is_symlink() or not previous.is_dir()):
        kind = "a link" if previous.is_symlink() else "not a directory"
        raise WatchdogStartError(
            f"{str(previous)!r} is {kind}, so the earlier report in {str(directory)!r} cannot be kept "
            "there. Move it away, or choose another report directory."
        )
    run_id = _safe_name(str(run_id))
    target = previous / run_id
    suffix = 1
    while os.path.lexists(target):
        suffix += 1
        target = previous / f"{run_id}.{suffix}"
    previous.mkdir(exist_ok=True)
    target.mkdir()
    for name in present:
        shutil.move(str(directory / name), str(target / name))
    if prune:
        prune_previous_reports(previous)
    return target


F = TypeVar("F", bound=Callable[..., Any])


@overload
def watch(fn: F, /) -> F: ...


@overload
def watch(
    *,
    report_dir: str | os.PathLike[str] | None = None,
    dashboard: bool | None = None,
    strict: bool | StopAt = False,
    fail_on: FailOn = "never",
    eval_every: int = 1,
    fingerprint: bool = False,
    summary: bool = True,
    checkpoint_verify: CheckpointVerify = "first",
    rank_lines: bool | None = None,
) -> "Watcher": ...


def watch(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    report_dir: str | os.PathLike[str] | None = None,
    dashboard: bool | None = None,
    strict: bool | StopAt = False,
    fail_on: FailOn = "never",
    eval_every: int = 1,
    fingerprint: bool = False,
    summary: bool = True,
    checkpoint_verify: CheckpointVerify = "first",
    rank_lines: bool | None = None,
    **unknown: Any,
) -> Any:
    """Watch a training loop: ``@watchdog.watch``, ``@watchdog.watch(...)`` or ``with watchdog.watch() as run:``.

    ``@watchdog.watch`` on a function watches each call of it (a generator's or coroutine's whole
    life); ``watchdog.watch(...)`` with options returns a ``Watcher``, usable as a decorator or as a
    context manager that yields the ``Run``. The decorated function's last run is ``fn.watchdog_run``.
    A ``watch`` nested inside an active one joins it.

    Args:
        report_dir: where ``report.json``, ``report.html`` and ``events.jsonl`` go (default
            ``$WATCHDOG_REPORT_DIR`` or ``./watchdog-report``).
        dashboard: the live dashboard; None: on when stdout is a terminal.
        strict: True or ``"error"``: raise ``WatchdogStop`` at the end of the DataLoader pass where
            the first error finding appeared; ``"warning"``: at the first warning too.
        fail_on: the exit status of ``watchdog run``: ``"never"``, ``"warning"`` or ``"error"``.
        eval_every: the expected evaluation cadence, in epochs.
        fingerprint: hash sample contents, to catch duplicates across dataset objects.
        summary: print the summary of the findings at the end.
        checkpoint_verify: read checkpoints back: ``"first"``, ``"every"`` or ``"off"``.
        rank_lines: under torchrun, ranks other than local rank 0 of node 0 print their epoch lines
            and their own summary too (default: ``$WATCHDOG_RANK_LINES``; off). Every rank writes
            ``DIR/rank<N>/`` either way; the merged report ``DIR/report.*`` is printed once.

    Raises:
        WatchdogUsageError: an unknown option or a bad value (before anything is watched).
    """
    if unknown:
        known = sorted(set(WatchOptions.__dataclass_fields__) - {"extra"})
        raise WatchdogUsageError(
            f"watchdog.watch got unknown option(s) {', '.join(sorted(unknown))}; known options: {', '.join(known)}"
        )
    watcher = Watcher(WatchOptions(
        report_dir=report_dir, dashboard=dashboard, strict=strict, fail_on=fail_on, eval_every=eval_every,
        fingerprint=fingerprint, summary=summary, checkpoint_verify=checkpoint_verify,
        rank_lines=rank_lines))
    if fn is None:
        return watcher
    if not callable(fn):
        raise WatchdogUsageError(
            f"watchdog.watch: expected a function to decorate or keyword options, got {fn!r}. "
            "Use @watchdog.watch, @watchdog.watch(report_dir=...) or `with watchdog.watch() as run:`"
        )
    return watcher(fn)


class Watcher:
    """What ``watchdog.watch(...)`` returns: a decorator, and a context manager that yields the ``Run``.

    Each use starts its own run (a use nested inside an active run joins it), with the options given
    to ``watchdog.watch``.
    """

    def __init__(self, options: WatchOptions) -> None:
        self.options = options
        self._runs: list[tuple[Run, bool]] = []

    def __call__(self, fn: F) -> F:
        """Decorate ``fn``; the run spans each call (a generator's or coroutine's whole life)."""
        options = self.options
        if inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"@watchdog.watch cannot watch the async generator function {fn.__qualname__!r}: the run "
                "would end at its first `yield`. Decorate the function that iterates it, or use "
                "`with watchdog.watch() as run:` around the `async for` loop."
            )
        watched: Any
        if inspect.isgeneratorfunction(fn):  # the run spans first next() to exhaustion or close()
            @functools.wraps(fn)
            def watched(*args: Any, **kwargs: Any) -> Any:
                with Watcher(options) as run:
                    watched.watchdog_run = run
                    return (yield from fn(*args, **kwargs))
        elif inspect.iscoroutinefunction(fn):  # the run spans the awaited coroutine
            @functools.wraps(fn)
            async def watched(*args: Any, **kwargs: Any) -> Any:
                with Watcher(options) as run:
                    watched.watchdog_run = run
                    return await fn(*args, **kwargs)
        else:
            @functools.wraps(fn)
            def watched(*args: Any, **kwargs: Any) -> Any:
                with Watcher(options) as run:
                    watched.watchdog_run = run
                    return fn(*args, **kwargs)

        watched.watchdog_run = None
        return watched  # type: ignore[no-any-return]

    def __enter__(self) -> Run:
        global _active_run
        with _active_lock:
            if _active_run is not None and _active_run.status == "running" and _active_run.pid == os.getpid():
                _active_run._depth += 1
                self._runs.append((_active_run, False))
                return _active_run
            with gc_paused():  # the start's objects all stay alive: no full collection over the heap for them
                run = Run(self.options)
            _active_run = run
        try:
            with gc_paused():
                run.start()
        except BaseException as exc:
            run._abandon_start()
            with _active_lock:
                _active_run = None
            if not isinstance(exc, Exception):
                raise  # Ctrl-C during the start
            say(f"watchdog: not watching this run: {describe_start_failure(exc)} "
                "(the training runs unwatched)")
            self._runs.append((run, False))
            return run
        self._runs.append((run, True))
        return run

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        global _active_run
        run, owner = self._runs.pop()
        if not owner:
            if run.status != "unwatched":
                run._depth -= 1
            return False
        try:
            run.stop(exc)
        finally:
            with _active_lock:
                if _active_run is run:
                    _active_run = None
        return False  # the user's exception propagates unchanged


def mark_epoch() -> None:
    """Mark the end of an epoch explicitly: call it once, right after each epoch's training.

    For loops without a training DataLoader (tensors sliced by hand, an iterator that never ends).
    Evaluation checks then judge cadence per marked epoch (``eval_every``). Once called, epochs are
    counted by marks only. No-op when not watching.
    """
    run = _active_run
    if run is not None and run.status == "running":
        run.mark_epoch()
