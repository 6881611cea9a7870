"""Events: what the probes saw, dispatched to checks and appended to ``events.jsonl``.

An ``Event`` has a ``kind``, JSON-safe ``data`` (written to the log) and ``refs`` (live objects for
in-process checks, never written). The log is append-only JSON lines, flushed as each event is
written, so a run that dies still leaves its evidence. The bus precomputes, per kind, which checks
handle it (as torchtnt's callback handler does), so an event nobody handles costs a dict lookup.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

EVENT_LOG_NAME = "events.jsonl"

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
    """Append-only JSON-lines file. Only the process that opened it writes (forked workers don't)."""

    def __init__(self, path: Path):
        self.path = path
        self._pid = os.getpid()
        self._file = open(path, "a", encoding="utf-8")

    def write(self, event: Event) -> None:
        if self._file is None or os.getpid() != self._pid:
            return
        self._file.write(event.to_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None and os.getpid() == self._pid:
            self._file.close()
        self._file = None


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
