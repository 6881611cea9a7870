"""Events: what the probes saw, dispatched to checks and appended to ``events.jsonl``.

An ``Event`` has a ``kind``, JSON-safe ``data`` (written to the log) and ``refs`` (live objects for
in-process checks, never written). The log is append-only JSON lines, flushed as each event is
written, so a run that dies still leaves its evidence. The bus precomputes, per kind, which checks
handle it (as torchtnt's callback handler does), so an event nobody handles costs a dict lookup.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

EVENT_LOG_NAME = "events.jsonl"
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

# The kinds the core emits. Features declare theirs in their package's ``EVENTS``; together they are
# the log format (``registry.event_kinds()``): add kinds, never rename one.
CORE_EVENTS: dict[str, str] = {
    "run_start": "run id, argv (redacted), pid, versions, options, the checks that run",
    "run_end": "status, epochs, steps, the loop's loaders / optimizers / models",
    "finding": "a finding as in report.json (with the check that made it), update: bool",
    "check_disabled": "a component that failed and was switched off: check (component), disables, error",
    "epoch_end": "epoch, epochs_completed, steps, source (loader / mark), loader",
    "loader_pass_start": "loader, loader_id, pass_index, epochs_completed, step",
    "loader_pass_end": "loader, role, batches, samples, steps, backwards, forwards, complete; refs: served, bases",
    "optimizer_first_step": "an optimizer's first step: name, type, step, param_tensors",
}


# The kinds report.json is built from: a live run keeps these events in memory, so its report holds
# everything it saw even when lines of the log were lost.
REPORT_EVENT_KINDS = frozenset({"run_start", "run_end", "finding", "epoch_end", "loader_pass_end"})


class UnknownEventKind(ValueError):
    """An event kind no feature declares: a misspelt ``on_<kind>`` handler or ``emit`` call."""


@dataclass(slots=True)
class Event:
    kind: str
    data: dict[str, Any]
    refs: dict[str, Any] | None = None
    t: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "t": self.t, "data": self.data}, default=_json_fallback)


def _json_fallback(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


class EventLog:
    """Append-only JSON-lines file. Only the process that opened it writes (forked workers don't).

    ``EventLog.prepare(path)`` opens a new log under a fresh temporary name beside ``path`` (never
    following a link planted there); ``commit()`` renames it into place once the run is sure to
    start, ``discard()`` removes it when the start fails, so a failed start leaves no log behind.
    """

    def __init__(self, path: Path, file: Any, pending: Path | None = None):
        self.path = path
        self._pid = os.getpid()
        self._file = file
        self._pending = pending  # the temporary name, until commit()
        self._closed = False
        self.lost = 0  # lines that could not be written (a full disk, an I/O error)

    @classmethod
    def prepare(cls, path: Path) -> "EventLog":
        path = Path(path)
        pending = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _O_NOFOLLOW, 0o666)
        try:
            file = os.fdopen(fd, "a", encoding="utf-8")
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(pending)
            raise
        return cls(path, file, pending)

    def commit(self) -> None:
        if self._pending is not None:
            os.replace(self._pending, self.path)
            self._pending = None

    def discard(self) -> None:
        """Close, and remove the file if it was never committed."""
        self.close()
        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(OSError):
                os.unlink(pending)

    def write(self, event: Event) -> None:
        """Append one line; on failure count it lost, raise, and reopen the file at the next write.

        A full disk is often transient (a checkpoint deleted, a quota raised): one failed write
        must not end the log. The failed write may have left part of its line: the first line
        after a reopen starts on a fresh line, so only the torn one is unreadable.
        """
        if self._closed or os.getpid() != self._pid:
            return
        try:
            line = event.to_json() + "\n"
            if self._file is None:
                self._file = self._open_append()
                line = "\n" + line
            self._file.write(line)
            self._file.flush()
        except BaseException:
            self.lost += 1
            file, self._file = self._file, None
            if file is not None:
                with contextlib.suppress(Exception):
                    file.close()  # its buffer holds the failed line: dropped with it
            raise

    def _open_append(self) -> Any:
        target = self._pending or self.path
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_NOFOLLOW, 0o666)
        try:
            return os.fdopen(fd, "a", encoding="utf-8")
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        self._closed = True
        file, self._file = self._file, None
        if file is not None and os.getpid() == self._pid:
            file.close()


def read_events(path: Path, on_bad_line: Callable[[], None] | None = None) -> Iterator[Event]:
    """Events of a finished or crashed run.

    A line that is not a JSON object (torn by a process that died mid-write, even mid-character)
    is skipped, and ``on_bad_line()`` is called for it.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                raw = json.loads(line)
            except ValueError:
                raw = None
            if not isinstance(raw, dict) or "kind" not in raw:
                if on_bad_line is not None:
                    on_bad_line()
                continue
            data = raw.get("data")
            yield Event(str(raw["kind"]), data if isinstance(data, dict) else {}, None, raw.get("t", 0.0))


Handler = Callable[[Event], None]


class EventBus:
    """Dispatches events to the handlers of checks and to listeners (the dashboard, the log)."""

    def __init__(self, on_handler_error: Callable[[Any, BaseException], None], kinds: Iterable[str] = ()):
        self.kinds = frozenset(kinds)
        self._handlers: dict[str, list[tuple[Any, Handler]]] = {}
        self._listeners: list[Handler] = []
        self._on_handler_error = on_handler_error

    def subscribe(self, owner: Any, kinds: Iterable[str] | None = None) -> None:
        """Subscribe ``owner``'s ``on_<kind>`` methods (all it defines, or only ``kinds``).

        A handler for a kind that is not declared raises ``UnknownEventKind`` before anything is
        subscribed: a misspelt handler is an error at start-up, not a check that silently never runs.
        """
        found = []
        for attr in dir(owner):
            if not attr.startswith("on_") or not callable(getattr(owner, attr)):
                continue
            kind = attr[3:]
            if self.kinds and kind not in self.kinds:
                raise UnknownEventKind(
                    f"{type(owner).__name__}.{attr} handles {kind!r}, which no feature emits; "
                    f"declared kinds: {', '.join(sorted(self.kinds))}")
            if kinds is None or kind in kinds:
                found.append((kind, getattr(owner, attr)))
        for kind, handler in found:
            self._handlers.setdefault(kind, []).append((owner, handler))

    def unsubscribe(self, owner: Any) -> None:
        for kind, pairs in list(self._handlers.items()):
            self._handlers[kind] = [(o, h) for (o, h) in pairs if o is not owner]

    def add_listener(self, listener: Handler) -> Callable[[], None]:
        """``listener(event)`` is called for every event; returns an idempotent remover."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def handles(self, kind: str) -> bool:
        return bool(self._handlers.get(kind))

    def dispatch(self, event: Event) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception as exc:
                self._on_handler_error(listener, exc)
        for owner, handler in tuple(self._handlers.get(event.kind, ())):
            try:
                handler(event)
            except Exception as exc:
                self.unsubscribe(owner)
                self._on_handler_error(owner, exc)
