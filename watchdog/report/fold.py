"""RunView: a pure-data snapshot of a watched run, built from its event stream.

The same code path serves the live dashboard (events fed as the bus emits them) and the
after-the-fact report (`DIR/events.jsonl` read back by `watchdog report DIR`). Presentation only
reads: nothing here touches torch or the run's live objects.

RunView folds what every run has (the run, its passes and epochs, findings, checks, the step
rate); each feature folds its own event kinds into its own view (``watchdog/<feature>/view.py``, a
``FeatureView`` declared in the feature's ``VIEWS``), which the run's view holds in ``features``.

Tolerance is part of the contract: unknown event kinds are ignored, missing fields stay `None`
(shown as "–"), and a truncated last line of a crashed run's log is skipped.
"""
from __future__ import annotations

import json
import math
import pathlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Iterator, Mapping

from ..core import registry
from ..core.events import read_events
from ..core.format import most_severe_first, severity_rank
from .markup import fmt


@dataclass
class FindingView:
    code: str
    severity: str
    message: str
    fix: str | None = None
    evidence: Any = None
    where: Any = None
    epoch: int | None = None
    step: int | None = None
    time: float | None = None
    key: Any = None
    check: str | None = None
    updates: int = 0

    @property
    def family(self) -> str:
        return self.code.split("/", 1)[0] if self.code else ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FindingView":
        return cls(
            code=str(d.get("code") or "?"),
            severity=str(d.get("severity") or "info"),
            message=str(d.get("message") or ""),
            fix=str_or_none(d.get("fix")),
            evidence=d.get("evidence"),
            where=d.get("where"),
            epoch=int_or_none(d.get("epoch")),
            step=int_or_none(d.get("step")),
            time=float_or_none(d.get("time")),
            key=d.get("key"),
            check=str_or_none(d.get("check")),
        )


@dataclass
class PassView:
    """One completed pass over a DataLoader."""
    loader: str | None
    role: str
    batches: int | None
    samples: int | None
    steps: int | None
    epoch: int  # 0-based index of the epoch the pass belongs to
    t: float | None
    complete: bool | None
    eval_mode_forwards: int | None = None
    nograd_batches: int | None = None
    loader_id: Any = None
    where: str | None = None  # where the loop iterated it (file:line in function())


@dataclass
class CheckStatus:
    name: str
    severity: str = "ok"  # ok / info / warning / error / disabled
    message: str = ""
    code: str = ""  # the code of the finding that set the severity


@dataclass(eq=False)
class FeatureView:
    """One feature's part of the views: its event kinds folded into its own state, and what it shows.

    A feature declares its views in its package's ``VIEWS``; every RunView holds one of each, by
    ``name``, in ``features``. The run's view calls ``on_<kind>(t, data)`` for each event of a kind
    the feature view handles (after its own handler, if any) and ``found(finding)`` for each finding
    it folded; the reports ask each feature view for its parts. A feature view reads the run's view
    (``self.run``: passes, epochs, findings) and never writes it.
    """
    run: "RunView" = field(repr=False)

    name: ClassVar[str] = ""
    # Its public reads, readable on the run's view too (``view.memory_series()``, ``view.checkpoints``).
    exports: ClassVar[tuple[str, ...]] = ()
    # Where its HTML section goes among the features' sections (lowest first).
    section_order: ClassVar[int] = 100

    def found(self, finding: "FindingView") -> None:
        """A finding was folded (reported or updated)."""

    def summary_cards(self) -> list[tuple[str, Any]]:
        """Cards for the top of the HTML page: (title, value); the value is text (escaped) or
        ``Markup`` (``markup.macro``/``render``)."""
        return []

    def html_section(self) -> Any:
        """Its section of the HTML page: ``Markup`` rendered from its template
        (``markup.render(f"{__package__}:section.html", ...)``), "" for none. A plain str is text."""
        return ""

    def epoch_line_part(self) -> str | None:
        """Its part of the one line per epoch printed when the dashboard cannot draw."""
        return None

    def summary_lines(self) -> list[str]:
        """Its lines in the terminal summary, after the findings (plain text)."""
        return []

    def dashboard_table(self) -> Any:
        """A rich renderable for the live dashboard, beside the checks (None for none)."""
        return None


@dataclass
class RunView:
    """Everything presentation needs, as plain data."""
    run_id: str | None = None
    argv: list[str] | None = None
    pid: int | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    report_dir: str | None = None
    t_start: float | None = None
    t_end: float | None = None
    t_last: float | None = None
    status: str = "running"
    epochs: int = 0          # completed epochs
    steps: int = 0           # optimizer steps
    phase: str = "idle"      # train / eval / unknown / idle
    current_loader: str | None = None
    current_pass_start: float | None = None
    current_batches: int | None = None   # live only: batches consumed in the open pass
    current_total: int | None = None     # live only: len(loader) when known
    total_epochs: int | None = None
    passes: list[PassView] = field(default_factory=list)
    epoch_ends: list[tuple[int, int | None, float | None]] = field(default_factory=list)
    findings: dict[tuple[str, str], FindingView] = field(default_factory=dict)
    recent_keys: dict = field(default_factory=dict)  # (code, key) in order of last report
    checks: dict[str, CheckStatus] = field(default_factory=dict)
    rate_samples: deque = field(default_factory=lambda: deque(maxlen=64))
    events_seen: int = 0
    events_bad: int = 0
    details: dict = field(default_factory=dict)  # run_end's optimizers, models, loaders, devices
    loss: float | None = None        # live only: the last backward()'s loss, when on the CPU
    loss_note: str | None = None     # live only: why it is not shown (on an accelerator)
    features: dict[str, FeatureView] = field(default_factory=dict)  # name -> each feature's view
    _feature_handlers: dict = field(default_factory=dict, init=False, repr=False)  # kind -> features' on_<kind>

    def __post_init__(self) -> None:
        if not self.features:
            self.features = {view.name: view(self) for view in registry.views()}

    def __getattr__(self, name: str) -> Any:
        """A feature view's public reads (its ``exports``) on the run's view: ``view.memory_series()``."""
        for feature in self.__dict__.get("features", {}).values():
            if name in feature.exports:
                return getattr(feature, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ------------------------------------------------------------------ building
    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> "RunView":
        view = cls()
        for ev in events:
            view.apply(ev)
        return view

    @classmethod
    def from_log(cls, path: str | pathlib.Path) -> "RunView":
        path = pathlib.Path(path)
        view = cls()
        for ev in iter_log(path, view):
            view.apply(ev)
        if view.report_dir is None:
            view.report_dir = str(path.parent)
        return view

    def apply(self, event: Any) -> None:
        """Fold one event (a dict as in events.jsonl, or an Event object) into the view."""
        kind, t, data = _unpack(event)
        if kind is None:
            self.events_bad += 1
            return
        self.events_seen += 1
        if t is not None:
            if self.t_start is None:
                self.t_start = t
            self.t_last = t if self.t_last is None else max(self.t_last, t)
        if not kind.isidentifier():
            return
        handler = getattr(self, "_on_" + kind, None)
        if handler is not None:
            handler(t, data)
        handlers = self._feature_handlers.get(kind)
        if handlers is None:
            handlers = self._feature_handlers[kind] = [
                h for feature in self.features.values() if (h := getattr(feature, "on_" + kind, None))]
        for h in handlers:
            h(t, data)

    def sample(self, t: float, steps: int | None = None, epoch: int | None = None) -> None:
        """Live sampling of the run's counters (from the dashboard thread)."""
        if isinstance(steps, int) and steps >= self.steps:
            self.steps = steps
        if isinstance(epoch, int) and epoch >= self.epochs:
            self.epochs = epoch
        self.t_last = t if self.t_last is None else max(self.t_last, t)
        self.rate_samples.append((t, self.steps))

    # ------------------------------------------------------------------ event handlers
    def _on_run_start(self, t, d):
        self.run_id = str_or_none(d.get("run_id") or d.get("id"))
        argv = d.get("argv")
        self.argv = [str(a) for a in argv] if isinstance(argv, list) else None
        self.pid = int_or_none(d.get("pid"))
        v = d.get("versions")
        self.versions = dict(v) if isinstance(v, Mapping) else {
            k: d[k] for k in ("watchdog", "python", "torch", "numpy") if isinstance(d.get(k), str)}
        self.report_dir = str_or_none(d.get("report_dir")) or self.report_dir
        self.total_epochs = int_or_none(d.get("epochs") or d.get("total_epochs"))
        for name in d.get("checks") or []:
            self.checks.setdefault(str(name), CheckStatus(str(name)))
        self.t_start = t if t is not None else self.t_start
        self.status = "running"
        if t is not None:
            self.rate_samples.append((t, 0))

    def _on_loader_pass_start(self, t, d):
        self.phase = str(d.get("role") or "unknown") if d.get("role") else self.phase_guess(d)
        self.current_loader = str_or_none(d.get("loader") or _first(d.get("names")))
        self.current_pass_start = t
        self._count_steps(t, int_or_none(d.get("step")))

    def _count_steps(self, t, steps: int | None) -> None:
        """The run's optimizer steps as an event says them (a pass's start and end carry `step`): a
        rate sample only where the count is known, never a stale count at a later time (which made
        the first epoch's rate the steps of a whole pass over the microseconds to its epoch's end)."""
        if steps is None:
            return
        if steps > self.steps:
            self.steps = steps
        if t is not None:
            self.rate_samples.append((t, self.steps))

    def phase_guess(self, d) -> str:
        # The role is only known at the pass's end; before that use what the loader did last time,
        # or a loader iterated at the same place (one rebuilt each epoch: `for x in DataLoader(...)`).
        loader_id = d.get("loader_id")
        name = d.get("loader")
        where = d.get("where")
        for p in reversed(self.passes):
            if (loader_id is not None and p.loader_id == loader_id) or (name and p.loader == name):
                return p.role
        # A loader iterated where others were, under a name none of them had (the Hugging Face Trainer's
        # `eval_dataset` beside its `train_dataset`, both located at `trainer.train()`), is not theirs.
        roles_here = {p.role for p in self.passes if where and p.where == where
                      and not (_named(name) and _named(p.loader) and p.loader != name)}
        if len(roles_here) == 1:  # a place that always trained (or always evaluated)
            return roles_here.pop()
        return "train" if not self.passes else "unknown"

    def _on_loader_pass_end(self, t, d):
        role = str(d.get("role") or "unknown")
        # A training pass belongs to the epoch in progress; an eval pass to the epoch of the last
        # training pass (the foundation closes the epoch when the training pass ends, so the
        # evaluation that follows it would otherwise land on the next epoch).
        last_train = next((p.epoch for p in reversed(self.passes) if p.role == "train"), None)
        at = int_or_none(d.get("epochs_completed"))
        epoch = (at if at is not None else self.epochs) if role == "train" or last_train is None else last_train
        p = PassView(
            loader=str_or_none(d.get("loader") or _first(d.get("names"))),
            role=role,
            batches=int_or_none(d.get("batches")),
            samples=int_or_none(d.get("samples")),
            steps=int_or_none(d.get("steps")),
            epoch=epoch,
            t=t,
            complete=d.get("complete") if isinstance(d.get("complete"), bool) else None,
            eval_mode_forwards=int_or_none(d.get("eval_mode_forwards")),
            nograd_batches=int_or_none(d.get("nograd_batches")),
        )
        p.loader_id = d.get("loader_id")
        p.where = str_or_none(d.get("where"))
        self.passes.append(p)
        self.phase = "idle"
        self.current_loader = None
        self.current_pass_start = None
        self.current_batches = None
        self.current_total = None
        self._count_steps(t, int_or_none(d.get("step")))

    def _on_epoch_end(self, t, d):
        # The foundation sends `epoch` (0-based index of the epoch that closed) and
        # `epochs_completed`; older or other writers may send only one of them.
        completed = int_or_none(d.get("epochs_completed"))
        if completed is None:
            idx = int_or_none(d.get("epoch"))
            completed = idx + 1 if idx is not None else self.epochs + 1
        steps = int_or_none(d.get("steps"))
        self.epochs = max(self.epochs, completed)
        if steps is not None and steps > self.steps:
            self.steps = steps
        self.epoch_ends.append((completed, steps, t))
        if t is not None:
            self.rate_samples.append((t, self.steps))

    def _on_finding(self, t, d):
        fd = d.get("finding") if isinstance(d.get("finding"), Mapping) else d
        f = FindingView.from_dict(fd)
        prior = int_or_none(fd.get("updates"))
        if f.time is None:
            f.time = t
        k = (f.code, json.dumps(f.key, sort_keys=True, default=str))
        old = self.findings.get(k)
        if prior is not None:
            f.updates = prior
        elif old is not None:
            f.updates = old.updates + 1
        self.findings[k] = f
        self.recent_keys.pop(k, None)
        self.recent_keys[k] = None
        for feature in self.features.values():
            feature.found(f)
        name = f.check or "watchdog"
        st = self.checks.setdefault(name, CheckStatus(name))
        if st.severity != "disabled" and severity_rank(f.severity) >= severity_rank(st.severity):
            st.severity = f.severity
            st.message = f"{f.code}: {f.message}"
            st.code = f.code

    def _on_check_disabled(self, t, d):
        name = str(d.get("disables") or d.get("check") or "?")
        st = self.checks.setdefault(name, CheckStatus(name))
        st.severity = "disabled"
        st.message = f"disabled: {fmt(d.get('error'))}"

    def _on_run_end(self, t, d):
        self.details = {k: d[k] for k in ("optimizers", "models", "loaders", "devices", "exception",
                                          "epoch_source", "disabled") if k in d}
        self.status = str(d.get("status") or "ok")
        self.t_end = t
        e = int_or_none(d.get("epochs"))
        s = int_or_none(d.get("steps"))
        if e is not None:
            self.epochs = max(self.epochs, e)
        if s is not None:
            self.steps = max(self.steps, s)
        self.phase = "done"

    # ------------------------------------------------------------------ derived
    @property
    def elapsed(self) -> float | None:
        end = self.t_end if self.t_end is not None else self.t_last
        if self.t_start is None or end is None:
            return None
        return max(0.0, end - self.t_start)

    def step_rate(self, window: float = 30.0) -> float | None:
        """Optimizer steps per second over the last `window` seconds of samples."""
        pts = [(t, s) for t, s in self.rate_samples if t is not None and s is not None]
        if len(pts) < 2:
            return None
        t1, s1 = pts[-1]
        base = pts[0]
        for t, s in pts:
            if t1 - t <= window:
                base = (t, s)
                break
        t0, s0 = base
        if t1 - t0 <= 0:
            return None
        return (s1 - s0) / (t1 - t0)

    def recent(self, limit: int = 5) -> list[FindingView]:
        """The findings reported or updated most recently, newest first."""
        keys = list(self.recent_keys)[-limit:][::-1]
        return [self.findings[k] for k in keys]

    def findings_sorted(self) -> list[FindingView]:
        return sorted(self.findings.values(),
                      key=lambda f: (most_severe_first(f.severity), f.time or 0.0, f.code))

    def counts(self) -> dict[str, int]:
        c = {"error": 0, "warning": 0, "info": 0}
        for f in self.findings.values():
            c[f.severity] = c.get(f.severity, 0) + 1
        return c


# ---------------------------------------------------------------------- log reading
def iter_log(path: pathlib.Path, view: RunView | None = None) -> Iterator[dict[str, Any]]:
    """Yield events from an events.jsonl; bad or truncated lines are counted, not fatal."""

    def count_bad() -> None:
        if view is not None:
            view.events_bad += 1

    for event in read_events(path, on_bad_line=count_bad):
        yield {"kind": event.kind, "t": event.t, "data": event.data}


def _unpack(event: Any) -> tuple[str | None, float | None, Mapping[str, Any]]:
    if isinstance(event, Mapping):
        kind, t, data = event.get("kind"), event.get("t"), event.get("data")
    else:
        kind, t, data = getattr(event, "kind", None), getattr(event, "t", None), getattr(event, "data", None)
    if not isinstance(kind, str):
        return None, None, {}
    return kind, float_or_none(t), data if isinstance(data, Mapping) else {}


def _named(label: Any) -> bool:
    """Whether a loader's label is its name in the user's code (`` `val_loader` ``), not a number."""
    return isinstance(label, str) and label.startswith("`")


def _first(x):
    if isinstance(x, (list, tuple)) and x:
        return x[0]
    return x if isinstance(x, str) else None


def int_or_none(x) -> int | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, float) and math.isfinite(x):
        return int(x)
    return None


def float_or_none(x) -> float | None:
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def str_or_none(x) -> str | None:
    if x is None:
        return None
    return x if isinstance(x, str) else str(x)
