"""Checkpoint files that do not read back as saved, or that change on disk after the save.

Per ``checkpoint_verify`` (``first``: the first save of each layout; ``every``; ``off``) the written
bytes of a save holding training state are read back with ``weights_only=True`` right after the
save, before training continues, and compared bit for bit with the object that was saved
(``roundtrip``); each read-back is logged as a ``checkpoint_verified`` event, and the run's saves
as one ``checkpoint_summary`` at the end. A file that needs full unpickling, or is too large to
read back in the free memory, is reported as unverifiable, with why. A verified file that later
changes on disk is caught when it is loaded again (or at run end); a file that was only stat-ed
(not read back) and is rewritten by something else before this run loads it is a warning.

Whether a save holds all the live training state is the completeness check's (``completeness``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from ..core.check import Check
from ..core.findings import Finding
from .live import SaveRecord
from .roundtrip import Unverifiable, compare, crc_changes, leaf_crcs, read_back


@dataclass
class FileRecord:
    """A file this run saved: (size, mtime) as written, its entries' fingerprints if it was read back."""

    stat: tuple[int, int]
    crcs: dict[str, str]
    steps: int
    label: str


MAX_READBACK_FRACTION = 0.4  # read a checkpoint back only when it fits in this share of free memory


def _available_memory() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001
        return None


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


class CheckpointIntegrityCheck(Check):
    """Checkpoint files that do not read back equal to what was saved, cannot be verified, or change on disk."""

    name = "checkpoint-integrity"

    def __init__(self, run: Any):
        super().__init__(run)
        self.verified_layouts: set[tuple] = set()
        self.files: dict[str, FileRecord] = {}
        self.saves = 0
        self.verified = 0
        self.verify_seconds = 0.0
        self.verify_bytes = 0

    # -- events ---------------------------------------------------------------------------------------
    def on_checkpoint_saved(self, event: Any) -> None:
        data, refs = event.data, event.refs or {}
        record = SaveRecord.from_event(event)
        self.saves += 1
        if record.holds_training_state:
            self._verify(record, refs.get("obj"), refs.get("source"), data)
        elif record.path:
            self.files.pop(record.path, None)  # overwritten by a save that is not a checkpoint: not tracked

    def on_checkpoint_loaded(self, event: Any) -> None:
        path = event.data.get("path")
        record = self.files.get(path) if path else None
        if record is None:
            return
        now = _stat(path)
        if now is None or now == record.stat:
            return
        self._changed_on_disk(path, record, (event.refs or {}).get("obj"), "loaded")

    def finish(self) -> None:
        if self.run.options.checkpoint_verify != "off":
            for path, record in list(self.files.items()):
                now = _stat(path) if record.crcs else None
                if now is not None and now != record.stat:
                    loaded = read_back(path)
                    if not isinstance(loaded, Unverifiable):
                        self._changed_on_disk(path, record, loaded, "re-read at run end")
        if self.saves:
            self.run.emit("checkpoint_summary", {
                "saves": self.saves, "verified": self.verified, "verify_seconds": round(self.verify_seconds, 6),
                "verify_bytes": self.verify_bytes, "policy": self.run.options.checkpoint_verify})

    # -- round trip ---------------------------------------------------------------------------------------
    def _verify(self, record: SaveRecord, obj: Any, source: Any, data: dict[str, Any]) -> None:
        policy = getattr(self.run.options, "checkpoint_verify", "first")
        # Size and mtime as written: a later load notices a rewrite by something else. Not for a save
        # into an open file object: the user may go on writing to it (after torch.save, before
        # close), so only the saved entries' fingerprints (below) can tell a rewrite.
        if record.path and data.get("target") == "path":
            st = _stat(record.path)
            if st is not None:
                self.files[record.path] = FileRecord(st, {}, self.run.loop.steps, record.label)
        if policy == "off" or source is None:
            return
        layout = (tuple(sorted(w.path for w in record.inv.weights)), tuple(o.path for o in record.inv.optimizers),
                  tuple(s.path for s in record.inv.schedulers), tuple(s.path for s in record.inv.scalers),
                  record.label if record.path is None else os.path.splitext(record.label)[1])
        if policy == "first" and layout in self.verified_layouts:
            return
        self.verified_layouts.add(layout)
        nbytes = data.get("bytes") or 0
        available = _available_memory()
        if available is not None and nbytes > available * MAX_READBACK_FRACTION:
            self._unverifiable(record, f"not read back: the file is {nbytes / 1e9:.1f} GB and only "
                                       f"{available / 1e9:.1f} GB of memory is available")
            return
        t0 = time.perf_counter()
        src = source()
        if isinstance(src, Unverifiable):
            self._unverifiable(record, src.why)
            return
        loaded = read_back(src)
        if isinstance(loaded, Unverifiable):
            self._unverifiable(record, loaded.why)
            return
        diffs, total = compare(obj, loaded)
        crcs = leaf_crcs(loaded) if record.path else {}
        seconds = time.perf_counter() - t0
        self.verified += 1
        self.verify_seconds += seconds
        self.verify_bytes += nbytes
        self.run.emit("checkpoint_verified", {"file": record.label, "path": record.path, "bytes": nbytes,
                                              "seconds": round(seconds, 6), "differences": total})
        if record.path:
            st = _stat(record.path)
            if st is not None:
                self.files[record.path] = FileRecord(st, crcs, self.run.loop.steps, record.label)
        if total:
            shown = "; ".join(f"{d.path}: {d.detail}" for d in diffs[:3])
            if data.get("main_thread") is False:
                shown += (f"; saved from thread {data.get('thread')!r}: if training kept updating these tensors "
                          f"during the save, the file holds a mix of steps")
            self.report(Finding(
                code="checkpoint/roundtrip-mismatch",
                severity="error",
                message=(f"{record.label} does not read back as saved: {total} difference(s) between the object "
                         f"passed to torch.save and the file loaded with weights_only=True ({shown})."),
                fix="Save plain state dicts of CPU/GPU tensors and builtin values; make sure nothing else writes "
                    "the same path, and re-save.",
                evidence={"file": record.label, "path": record.path, "differences": total,
                          "first": [d.as_dict() for d in diffs]},
                where=record.where,
                key=record.path or record.label,
            ))

    def _unverifiable(self, record: SaveRecord, why: str) -> None:
        self.report(Finding(
            code="checkpoint/unverifiable",
            severity="info",
            message=f"{record.label} could not be read back safely to verify it: {why}.",
            fix="Save state dicts (tensors, numbers, strings, lists, dicts) so the file loads with "
                "torch.load(path, weights_only=True).",
            evidence={"file": record.label, "path": record.path, "why": why},
            where=record.where,
            key=record.path or record.label,
        ))

    def _changed_on_disk(self, path: str, record: FileRecord, loaded: Any, how: str) -> None:
        if not record.crcs:  # not read back when saved: only size and mtime to go by
            now_stat = _stat(path)
            if how != "loaded" or now_stat is None:
                return
            record.stat, (size_then, mtime_then) = now_stat, record.stat
            self.report(Finding(
                code="checkpoint/changed-on-disk",
                severity="warning",
                message=(f"{record.label} was rewritten on disk after this run saved it at step {record.steps} "
                         f"(size {size_then} -> {now_stat[0]} bytes, modified {(now_stat[1] - mtime_then) / 1e9:.1f} s "
                         f"later) by something other than this run's torch.save; it is loaded now, so what is "
                         f"loaded may not be what was saved."),
                fix="Find what else writes this path (another job, a copy, a sync tool); with "
                    "checkpoint_verify='every' watchdog fingerprints each save and names the changed entries.",
                evidence={"file": record.label, "path": path, "saved_at_step": record.steps,
                          "size_then": size_then, "size_now": now_stat[0], "how": how},
                key=path,
            ))
            return
        if loaded is None:
            return
        now = leaf_crcs(loaded)
        changed = crc_changes(record.crcs, now)
        record.stat = _stat(path) or record.stat  # judged: run end re-reads only on a further change
        if not changed:
            return
        self.report(Finding(
            code="checkpoint/changed-on-disk",
            severity="error",
            message=(f"{record.label} changed on disk after this run saved it at step {record.steps}: "
                     f"{len(changed)} entr{'y' if len(changed) == 1 else 'ies'} differ when it is {how} "
                     f"({', '.join(changed[:4])}{' ...' if len(changed) > 4 else ''})."),
            fix="Find what else writes this path (another job, a copy, a sync tool) and re-save; "
                "never resume from a file that differs from what was saved.",
            evidence={"file": record.label, "path": path, "saved_at_step": record.steps, "changed": changed[:50],
                      "how": how},
            key=path,
        ))
