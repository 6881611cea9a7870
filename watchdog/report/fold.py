"""RunView: a pure-data snapshot of a watched run, built from its event stream.

The same code path serves the live dashboard (events fed as the bus emits them) and the
after-the-fact report (`DIR/events.jsonl` read back by `watchdog report DIR`). Presentation only
reads: nothing here touches torch or the run's live objects.

Tolerance is part of the contract: unknown event kinds are ignored, missing fields stay `None`
(shown as "–"), and a truncated last line of a crashed run's log is skipped.
"""
from __future__ import annotations

import json
import math
import pathlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from ..core.events import read_events
from ..core.format import DASH, fmt_bytes, most_severe_first, severity_rank

# Keys of a memory_sample's data that describe *when* it was taken, not a measurement.
_MEMORY_META_KEYS = frozenset(
    {"epoch", "steps", "step", "t", "time", "at", "when", "phase", "reason", "source", "trigger",
     "pass_index", "window", "kind", "available", "unavailable", "device_name", "name", "uuid",
     "index", "devices_total", "total_bytes", "total", "census"}
)


def fmt(value: Any) -> str:
    """A value for display: None and empty become the dash."""
    if value is None or value == "":
        return DASH
    return str(value)


def fmt_value(name: str, v: Any) -> str:
    return fmt_bytes(v) if is_bytes_series(name) else (f"{v:,.0f}" if isinstance(v, (int, float)) else fmt(v))


def is_bytes_series(name: str) -> bool:
    n = name.lower()
    return "bytes" in n or n.endswith(("allocated", "reserved", "used", "rss", "active", "inactive_split",
                                         "peak", "free"))


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
            fix=_str_or_none(d.get("fix")),
            evidence=d.get("evidence"),
            where=d.get("where"),
            epoch=_int_or_none(d.get("epoch")),
            step=_int_or_none(d.get("step")),
            time=_float_or_none(d.get("time")),
            key=d.get("key"),
            check=_str_or_none(d.get("check")),
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


@dataclass
class CheckpointView:
    path: str | None
    held: dict[str, Any]
    epoch: int | None
    step: int | None
    t: float | None
    size_bytes: int | None = None
    verified: Any = None
    codes: dict = field(default_factory=dict)  # finding codes that named this file -> severity


@dataclass
class MemoryPoint:
    epoch: int | None
    steps: int | None
    t: float | None
    at_epoch_end: bool
    values: dict[str, float]


@dataclass
class CheckStatus:
    name: str
    severity: str = "ok"  # ok / info / warning / error / disabled
    message: str = ""


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
    memory: list[MemoryPoint] = field(default_factory=list)          # epoch-end samples
    memory_recent: deque = field(default_factory=lambda: deque(maxlen=600))  # in-epoch samples
    memory_last_in_epoch: dict = field(default_factory=dict)  # completed epochs k -> last sampler values
    findings: dict[tuple[str, str], FindingView] = field(default_factory=dict)
    recent_keys: dict = field(default_factory=dict)  # (code, key) in order of last report
    checks: dict[str, CheckStatus] = field(default_factory=dict)
    checkpoints: list[CheckpointView] = field(default_factory=list)
    eval_windows: dict[int, dict] = field(default_factory=dict)  # epoch -> the cadence check's verdict
    rate_samples: deque = field(default_factory=lambda: deque(maxlen=64))
    events_seen: int = 0
    events_bad: int = 0
    details: dict = field(default_factory=dict)  # run_end's optimizers, models, loaders, devices
    loss: float | None = None        # live only: the last backward()'s loss, when on the CPU
    loss_note: str | None = None     # live only: why it is not shown (on an accelerator)

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
        handler = getattr(self, "_on_" + kind, None) if kind.isidentifier() else None
        if handler is not None:
            handler(t, data)

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
        self.run_id = _str_or_none(d.get("run_id") or d.get("id"))
        argv = d.get("argv")
        self.argv = [str(a) for a in argv] if isinstance(argv, list) else None
        self.pid = _int_or_none(d.get("pid"))
        v = d.get("versions")
        self.versions = dict(v) if isinstance(v, Mapping) else {
            k: d[k] for k in ("watchdog", "python", "torch", "numpy") if isinstance(d.get(k), str)}
        self.report_dir = _str_or_none(d.get("report_dir")) or self.report_dir
        self.total_epochs = _int_or_none(d.get("epochs") or d.get("total_epochs"))
        for name in d.get("checks") or []:
            self.checks.setdefault(str(name), CheckStatus(str(name)))
        self.t_start = t if t is not None else self.t_start
        self.status = "running"
        if t is not None:
            self.rate_samples.append((t, 0))

    def _on_loader_pass_start(self, t, d):
        self.phase = str(d.get("role") or "unknown") if d.get("role") else self.phase_guess(d)
        self.current_loader = _str_or_none(d.get("loader") or _first(d.get("names")))
        self.current_pass_start = t

    def phase_guess(self, d) -> str:
        # The role is only known at the pass's end; before that use what the loader did last time.
        loader_id = d.get("loader_id")
        name = d.get("loader")
        for p in reversed(self.passes):
            if (loader_id is not None and p.loader_id == loader_id) or (name and p.loader == name):
                return p.role
        return "train" if not self.passes else "unknown"

    def _on_loader_pass_end(self, t, d):
        role = str(d.get("role") or "unknown")
        # A training pass belongs to the epoch in progress; an eval pass to the epoch of the last
        # training pass (the foundation closes the epoch when the training pass ends, so the
        # evaluation that follows it would otherwise land on the next epoch).
        last_train = next((p.epoch for p in reversed(self.passes) if p.role == "train"), None)
        at = _int_or_none(d.get("epochs_completed"))
        epoch = (at if at is not None else self.epochs) if role == "train" or last_train is None else last_train
        p = PassView(
            loader=_str_or_none(d.get("loader") or _first(d.get("names"))),
            role=role,
            batches=_int_or_none(d.get("batches")),
            samples=_int_or_none(d.get("samples")),
            steps=_int_or_none(d.get("steps")),
            epoch=epoch,
            t=t,
            complete=d.get("complete") if isinstance(d.get("complete"), bool) else None,
            eval_mode_forwards=_int_or_none(d.get("eval_mode_forwards")),
            nograd_batches=_int_or_none(d.get("nograd_batches")),
        )
        p.loader_id = d.get("loader_id")
        self.passes.append(p)
        self.phase = "idle"
        self.current_loader = None
        self.current_pass_start = None
        self.current_batches = None
        self.current_total = None
        total = _int_or_none(d.get("total_steps") or d.get("run_steps"))
        if total is not None and total > self.steps:
            self.steps = total
        if t is not None:
            self.rate_samples.append((t, self.steps))

    def _on_epoch_end(self, t, d):
        # The foundation sends `epoch` (0-based index of the epoch that closed) and
        # `epochs_completed`; older or other writers may send only one of them.
        completed = _int_or_none(d.get("epochs_completed"))
        if completed is None:
            idx = _int_or_none(d.get("epoch"))
            completed = idx + 1 if idx is not None else self.epochs + 1
        steps = _int_or_none(d.get("steps"))
        self.epochs = max(self.epochs, completed)
        if steps is not None and steps > self.steps:
            self.steps = steps
        self.epoch_ends.append((completed, steps, t))
        if t is not None:
            self.rate_samples.append((t, self.steps))

    def _on_finding(self, t, d):
        fd = d.get("finding") if isinstance(d.get("finding"), Mapping) else d
        f = FindingView.from_dict(fd)
        prior = _int_or_none(fd.get("updates"))
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
        self._link_checkpoint(f)
        name = f.check or "watchdog"
        st = self.checks.setdefault(name, CheckStatus(name))
        if st.severity != "disabled" and severity_rank(f.severity) >= severity_rank(st.severity):
            st.severity = f.severity
            st.message = f"{f.code}: {f.message}"

    def _link_checkpoint(self, f: FindingView) -> None:
        """A checkpoint finding names its file (evidence `checkpoint`, `directory`) and may carry
        the inventory of what the save held (`saved_parts`): attach both to that save's row."""
        ev = f.evidence if isinstance(f.evidence, Mapping) else {}
        name = ev.get("checkpoint") or ev.get("file") or ev.get("path")
        if not isinstance(name, str) or not self.checkpoints:
            return
        directory = ev.get("directory")
        for c in reversed(self.checkpoints):
            if c.path is None:
                continue
            if c.path == name or (isinstance(directory, str) and c.path == f"{directory.rstrip('/')}/{name}") \
                    or (directory is None and c.path.rsplit("/", 1)[-1] == name):
                c.codes[f.code] = f.severity
                parts = ev.get("saved_parts")
                if isinstance(parts, list) and not c.held:
                    merged: dict[str, Any] = {}
                    for part in parts:
                        if isinstance(part, Mapping):
                            for kind, value in _held({"holds": part}).items():
                                if value or kind not in merged:
                                    merged[kind] = value
                    c.held = merged
                return

    def _on_eval_window(self, t, d):
        epoch = d.get("epoch")
        if isinstance(epoch, int) and epoch >= 0:
            self.eval_windows[epoch] = dict(d)

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
        e = _int_or_none(d.get("epochs"))
        s = _int_or_none(d.get("steps"))
        if e is not None:
            self.epochs = max(self.epochs, e)
        if s is not None:
            self.steps = max(self.steps, s)
        self.phase = "done"

    def _on_memory_sample(self, t, d):
        values = memory_values(d)
        at = str(d.get("at") or d.get("trigger") or d.get("reason") or "")  # "epoch_end" | "sampler"
        point = MemoryPoint(
            epoch=_int_or_none(d.get("epoch")),
            steps=_int_or_none(d.get("steps", d.get("step"))),
            t=t,
            at_epoch_end=at in ("epoch_end", "epoch", ""),
            values=values,
        )
        # The background sampler writes about one sample a second: keep only the recent ones, and
        # per epoch the last one (NVML, for one, is only in these).
        if point.at_epoch_end:
            self.memory.append(point)
        else:
            self.memory_recent.append(point)
            if point.epoch is not None:
                self.memory_last_in_epoch[point.epoch] = values

    def _on_checkpoint_saved(self, t, d):
        self.checkpoints.append(CheckpointView(
            path=_str_or_none(d.get("path") or d.get("file")) or _str_or_none(d.get("target")),
            held=_held(d),
            epoch=_int_or_none(d.get("epoch", self.epochs)),
            step=_int_or_none(d.get("step", d.get("steps", self.steps))),
            t=t,
            size_bytes=_int_or_none(d.get("size_bytes", d.get("bytes"))),
            verified=d.get("verified"),
        ))

    def _on_checkpoint_verified(self, t, d):
        """The checkpoint check read a save back: mark the newest save of that file."""
        path = _str_or_none(d.get("path"))
        diffs = _int_or_none(d.get("differences"))
        for c in reversed(self.checkpoints):
            if path is None or c.path == path:
                c.verified = (diffs == 0) if diffs is not None else d.get("ok")
                break

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

    def memory_series(self) -> dict[str, list[tuple[int, float]]]:
        """Per source, one value per epoch: the epoch-end sample, completed with the sources only
        the in-epoch sampler reads (NVML) from its last sample in that epoch."""
        per_epoch: dict[int, dict[str, float]] = {}
        if self.memory:
            for i, p in enumerate(self.memory):
                e = p.epoch if p.epoch is not None else i + 1
                sampled = self.memory_last_in_epoch.get(e - 1, {})
                per_epoch[e] = {**sampled, **p.values}
        else:
            for i, p in enumerate(self.memory_recent):
                per_epoch[p.epoch if p.epoch is not None else i] = p.values
        series: dict[str, list[tuple[int, float]]] = {}
        for e in sorted(per_epoch):
            for name, v in per_epoch[e].items():
                series.setdefault(name, []).append((e, v))
        return series

    def eval_cadence(self) -> list[dict[str, Any]]:
        """One row per epoch (numbered from 0, as the findings do): its train, eval and unknown passes,
        the cadence check's verdict (``evaluated``: True / False / None before the check judged it,
        ``by``: what evaluated it) and whether the check flagged it (``flagged``: in the latest
        ``eval/missing-epochs`` finding)."""
        n = max([self.epochs] + [p.epoch + 1 for p in self.passes] + [e + 1 for e in self.eval_windows] + [0])
        rows = [{"epoch": i, "train": 0, "eval": 0, "unknown": 0, "evaluated": None, "by": [], "flagged": False}
                for i in range(n)]
        for p in self.passes:
            if p.epoch < n:
                key = p.role if p.role in ("train", "eval") else "unknown"
                rows[p.epoch][key] += 1
        for epoch, verdict in self.eval_windows.items():
            rows[epoch]["evaluated"] = bool(verdict.get("evaluated"))
            rows[epoch]["by"] = [str(b) for b in verdict.get("by") or []]
        for f in self.findings.values():
            if f.code == "eval/missing-epochs" and isinstance(f.evidence, Mapping):
                for epoch in f.evidence.get("missing_epochs") or []:
                    if isinstance(epoch, int) and 0 <= epoch < n:
                        rows[epoch]["flagged"] = True
        return rows

    def overlaps(self) -> list[dict[str, Any]]:
        """Train/eval overlap counts found by the overlap check, one row per finding."""
        rows = []
        for f in self.findings.values():
            ev = f.evidence if isinstance(f.evidence, Mapping) else {}
            if f.family != "overlap" and "overlap" not in ev:
                continue
            count = _first_number(ev, ("overlap", "overlap_count", "eval_samples_seen"))
            if count is None:
                continue
            total = _first_number(ev, ("eval_samples", "eval_size", "eval_samples_seen"))
            rows.append({"label": _overlap_label(f, ev), "count": count, "total": total,
                         "severity": f.severity, "code": f.code})
        return rows


# ---------------------------------------------------------------------- log reading
def iter_log(path: pathlib.Path, view: RunView | None = None) -> Iterator[dict[str, Any]]:
    """Yield events from an events.jsonl; bad or truncated lines are counted, not fatal."""

    def count_bad() -> None:
        if view is not None:
            view.events_bad += 1

    for event in read_events(path, on_bad_line=count_bad):
        yield {"kind": event.kind, "t": event.t, "data": event.data}


# Per-device CUDA allocator and NVML values worth a chart (the rest stays in the event log).
_CUDA_CHARTED = ("allocated", "reserved", "epoch_peak", "inactive_split")
_NVML_CHARTED = ("used",)
_CENSUS_CHARTED = {"count": "tensors", "bytes": "tensor_bytes", "graph_count": "graph_tensors",
                   "graph_bytes": "graph_bytes"}


def memory_values(d: Mapping[str, Any]) -> dict[str, float]:
    """The charted values of one memory_sample, one name per source.

    The memory probe writes `rss` (bytes), `cuda` / `nvml` as lists of per-device dicts, and at
    epoch end a live-tensor `census` (count, bytes, graph_count, graph_bytes). Anything else numeric
    at the top level (other writers, older logs) is kept under its dotted name.
    """
    out: dict[str, float] = {}
    for key, value in d.items():
        if key in ("cuda", "nvml") and isinstance(value, list):
            charted = _CUDA_CHARTED if key == "cuda" else _NVML_CHARTED
            for i, dev in enumerate(value):
                if not isinstance(dev, Mapping):
                    continue
                idx = dev.get("device", i)
                for name in charted:
                    v = _float_or_none(dev.get(name))
                    if v is not None:
                        out[f"{key}:{idx} {name}"] = v
        elif key == "census" and isinstance(value, Mapping):
            for name, label in _CENSUS_CHARTED.items():
                v = _float_or_none(value.get(name))
                if v is not None:
                    out[label] = v
        elif key == "rss":
            v = _float_or_none(value)
            if v is not None:
                out["rss_bytes"] = v
        elif key in _MEMORY_META_KEYS or key.endswith("_diff") or key in ("top", "culprits"):
            continue
        else:
            out.update(flatten_numeric({key: value}))
    return out


def flatten_numeric(d: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a memory sample as dotted names ("cuda.0.allocated": 1.2e9)."""
    out: dict[str, float] = {}
    if isinstance(d, Mapping):
        for k, v in d.items():
            k = str(k)
            if not prefix and k in _MEMORY_META_KEYS:
                continue
            if k in ("epoch", "steps", "step", "t", "time", "index", "pid"):
                continue
            name = f"{prefix}.{k}" if prefix else k
            out.update(flatten_numeric(v, name))
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            out.update(flatten_numeric(v, f"{prefix}.{i}" if prefix else str(i)))
    elif isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d) and prefix:
        out[prefix] = float(d)
    return out


def _unpack(event: Any) -> tuple[str | None, float | None, Mapping[str, Any]]:
    if isinstance(event, Mapping):
        kind, t, data = event.get("kind"), event.get("t"), event.get("data")
    else:
        kind, t, data = getattr(event, "kind", None), getattr(event, "t", None), getattr(event, "data", None)
    if not isinstance(kind, str):
        return None, None, {}
    return kind, _float_or_none(t), data if isinstance(data, Mapping) else {}


def _first(x):
    if isinstance(x, (list, tuple)) and x:
        return x[0]
    return x if isinstance(x, str) else None


def _int_or_none(x) -> int | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, float) and math.isfinite(x):
        return int(x)
    return None


def _float_or_none(x) -> float | None:
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def _str_or_none(x) -> str | None:
    if x is None:
        return None
    return x if isinstance(x, str) else str(x)


HELD_KINDS = ("model", "optimizer", "scheduler", "scaler", "counters")
_HOLDS_LISTS = {"model": "weights", "optimizer": "optimizers", "scheduler": "schedulers", "scaler": "scalers",
                "counters": "counters"}


def _held(d: Mapping[str, Any]) -> dict[str, Any]:
    """What a saved checkpoint held, per kind: True/False, or a short description.

    Accepts `held` ({kind: bool}) or the checkpoint probe's inventory `holds`
    ({weights: [...], optimizers: [...], schedulers: [...], scalers: [...], counters: [...]}).
    """
    held = d.get("held")
    if isinstance(held, Mapping):
        return dict(held)
    holds = d.get("holds") or d.get("inventory")
    if not isinstance(holds, Mapping):
        return {k: d[k] for k in HELD_KINDS if k in d}
    out: dict[str, Any] = {}
    for kind, key in _HOLDS_LISTS.items():
        items = holds.get(key)
        if not isinstance(items, list):
            continue
        if not items:
            out[kind] = False
        elif kind == "model":
            n = sum(_int_or_none(w.get("tensors")) or 0 for w in items if isinstance(w, Mapping))
            out[kind] = f"{n} tensors" if n else True
        elif kind == "counters":
            keys = [str(c.get("key")) for c in items if isinstance(c, Mapping) and c.get("key") is not None]
            out[kind] = ", ".join(keys) if keys else True
        else:
            out[kind] = True if len(items) == 1 else f"{len(items)}"
    return out


def _first_number(ev: Mapping[str, Any], keys) -> float | None:
    for k in keys:
        v = ev.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _label(x: Any) -> str | None:
    if isinstance(x, str):
        return x
    if isinstance(x, Mapping):
        for k in ("label", "name"):
            if isinstance(x.get(k), str):
                return x[k]
        names = x.get("names")
        if isinstance(names, list) and names:
            return str(names[0])
    if isinstance(x, list):
        labels = [lb for lb in map(_label, x) if lb]
        return " + ".join(labels) if labels else None
    return None


def _overlap_label(f: FindingView, ev: Mapping[str, Any]) -> str:
    train = _label(ev.get("train_loaders")) or _label(ev.get("train_loader")) or _label(ev.get("train"))
    evl = _label(ev.get("eval_loader")) or _label(ev.get("eval")) or _label(ev.get("loader"))
    parts = [p for p in (train, evl) if p]
    if parts:
        return " / ".join(parts)
    return str(f.key) if f.key is not None else f.code
