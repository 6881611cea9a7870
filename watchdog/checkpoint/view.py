"""The checkpoint feature's part of the views: each save, what it held, whether it read back equal.

Folds ``checkpoint_saved`` (one row per save, with what the save held) and ``checkpoint_verified``
(the integrity check's read-back), and links each checkpoint or resume finding to the save it names;
shown as the "checkpoints" card and the checkpoints table of the HTML report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..report.fold import FeatureView, FindingView, int_or_none, str_or_none
from ..report.markup import Markup, json_text, render

HELD_KINDS = ("model", "optimizer", "scheduler", "scaler", "counters")
_HOLDS_LISTS = {"model": "weights", "optimizer": "optimizers", "scheduler": "schedulers", "scaler": "scalers",
                "counters": "counters"}


@dataclass
class SavedCheckpoint:
    """One save: where, when, what it held, its read-back, and the findings that named it."""
    path: str | None
    held: dict[str, Any]
    epoch: int | None
    step: int | None
    t: float | None
    size_bytes: int | None = None
    verified: Any = None
    codes: dict = field(default_factory=dict)  # finding codes that named this file -> severity


@dataclass(eq=False)
class CheckpointsView(FeatureView):
    """The run's checkpoint saves, in order."""
    name = "checkpoint"
    exports = ("checkpoints",)
    section_order = 40

    checkpoints: list[SavedCheckpoint] = field(default_factory=list)

    def on_checkpoint_saved(self, t, d):
        self.checkpoints.append(SavedCheckpoint(
            path=str_or_none(d.get("path") or d.get("file")) or str_or_none(d.get("target")),
            held=_held(d),
            epoch=int_or_none(d.get("epoch", self.run.epochs)),
            step=int_or_none(d.get("step", d.get("steps", self.run.steps))),
            t=t,
            size_bytes=int_or_none(d.get("size_bytes", d.get("bytes"))),
            verified=d.get("verified"),
        ))

    def on_checkpoint_verified(self, t, d):
        """The checkpoint check read a save back: mark the newest save of that file."""
        path = str_or_none(d.get("path"))
        diffs = int_or_none(d.get("differences"))
        for c in reversed(self.checkpoints):
            if path is None or c.path == path:
                c.verified = (diffs == 0) if diffs is not None else d.get("ok")
                break

    def found(self, finding: FindingView) -> None:
        """A checkpoint finding names its file (evidence `checkpoint`, `directory`) and may carry
        the inventory of what the save held (`saved_parts`): attach both to that save's row."""
        ev = finding.evidence if isinstance(finding.evidence, Mapping) else {}
        name = ev.get("checkpoint") or ev.get("file") or ev.get("path")
        if not isinstance(name, str) or not self.checkpoints:
            return
        directory = ev.get("directory")
        for c in reversed(self.checkpoints):
            if c.path is None:
                continue
            if c.path == name or (isinstance(directory, str) and c.path == f"{directory.rstrip('/')}/{name}") \
                    or (directory is None and c.path.rsplit("/", 1)[-1] == name):
                c.codes[finding.code] = finding.severity
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

    # ------------------------------------------------------------------ what it shows
    def summary_cards(self) -> list[tuple[str, str]]:
        return [("checkpoints", str(len(self.checkpoints)))]

    def html_section(self) -> Markup:
        extra = sorted({k for c in self.checkpoints for k in c.held} - set(HELD_KINDS))
        kinds = list(HELD_KINDS) + extra
        saves = [{"path": c.path, "epoch": c.epoch, "step": c.step, "size_bytes": c.size_bytes, "held": c.held,
                  "verified": c.verified, "codes": self._finding_codes(c),
                  "flagged": {k: _flagged(c.codes, k) for k in kinds}}
                 for c in self.checkpoints]
        return render(f"{__package__}:checkpoints.html", saves=saves, kinds=kinds)

    def _finding_codes(self, c: SavedCheckpoint) -> dict[str, str]:
        """Codes (and severities) of the checkpoint/resume findings that named this file."""
        codes = dict(c.codes)
        if not codes and c.path:
            base = c.path.rsplit("/", 1)[-1]
            for f in self.run.findings_sorted():
                if f.family in ("checkpoint", "resume"):
                    blob = json_text(f.evidence) + " " + str(f.where) + " " + str(f.key) + " " + f.message
                    if c.path in blob or base in blob:
                        codes[f.code] = f.severity
        return codes


def _flagged(codes: Mapping[str, str], kind: str) -> bool:
    """Whether a finding about this save is about this kind of state (e.g. missing-optimizer-state)."""
    return any(kind in code.split("/", 1)[-1] for code in codes)


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
            n = sum(int_or_none(w.get("tensors")) or 0 for w in items if isinstance(w, Mapping))
            out[kind] = f"{n} tensors" if n else True
        elif kind == "counters":
            keys = [str(c.get("key")) for c in items if isinstance(c, Mapping) and c.get("key") is not None]
            out[kind] = ", ".join(keys) if keys else True
        else:
            out[kind] = True if len(items) == 1 else f"{len(items)}"
    return out
