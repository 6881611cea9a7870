"""What a rank of a multi-process run served, written to its folder for the cross-rank checks.

In a run under ``torchrun`` (one with a ``RankInfo``) each rank writes, into ``DIR/rank<N>/served/``,
for each role (``train``, ``eval``) and base dataset, the union of the base indices its DataLoader
passes served, and, per base dataset, the set its *first* training pass served (what
``distributed/unsharded-train-loader`` compares: later epochs of a sharded loader cover other
shards). Base datasets are named by their identity across processes (``core.datasets.dataset_identity``):
on each rank the same data is a different object.

- ``<role>-<base>.bits`` / ``first-train-<base>.bits``: an ``IndexSet`` bitmap, one bit per sample of
  the base dataset (12.5 MB per role per base dataset for 100M samples; 125 KB for 1M);
- ``index.json``: the rank, each base's identity and label, and per file its sample count and the
  loaders that served it.

Written at the end of a DataLoader pass only (no per-step cost), each file only when it changed
(a union that grew, a new loader), atomically (a temporary file renamed over the old one: the
merge never reads a torn file). One process alone (no ``RankInfo``) writes nothing. ``read_served``
reads a rank's folder back.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .indexset import IndexSet

if TYPE_CHECKING:
    from ..core.run import Run

SERVED_FOLDER = "served"
INDEX_NAME = "index.json"
FORMAT = 1
ROLES = ("train", "eval")


def base_file_id(identity_key: str) -> str:
    """A file-name-safe name for a base dataset's identity key (16 hex digits of its hash)."""
    return hashlib.blake2b(identity_key.encode("utf-8"), digest_size=8).hexdigest()


def _write_atomically(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as file:
            write(file)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


class ServedExport:
    """The export probe: at each DataLoader pass's end, the rank's served sets to ``served/``.

    Subscribed to ``loader_pass_end`` only when the run is one rank of several; a failed write
    switches it off (an internal-error finding, ``probe:served-export``): the cross-rank overlap
    check then keeps that rank's own findings.
    """

    name = "served-export"

    def install(self, run: "Run") -> None:
        rank = getattr(run, "rank_info", None)
        if rank is None:
            return
        self.run = run
        self.rank = rank
        self.folder = Path(run.report_dir) / SERVED_FOLDER
        self.unions: dict[tuple[str, str], IndexSet] = {}  # (role, base file id) -> served on this rank
        self.first_train: dict[str, IndexSet] = {}  # base file id -> its first training pass's set
        self.first_train_meta: dict[str, dict[str, Any]] = {}
        self.written: dict[str, int] = {}  # file name -> the sample count it holds on disk
        self.bases: dict[str, dict[str, Any]] = {}  # base file id -> identity, label
        # (role, base) -> {stream id: its newest loader}: a loader rebuilt each epoch is one entry
        # (core.loaders.LoaderStreams), so index.json stays as long whatever the number of epochs
        self.loaders: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.index_text: str | None = None
        try:
            self._clear_earlier_export()
        except OSError as exc:  # this rank exports nothing: the merge keeps its own findings instead
            run.internal_error(f"probe:{self.name}", exc)
            return
        run.bus.subscribe(self, kinds=("loader_pass_end",))
        run.patches.add_undo(lambda: run.bus.unsubscribe(self), "overlap: served-set export subscription")

    def _clear_earlier_export(self) -> None:
        """An earlier run's ``served/`` in this rank folder (its events were archived): not this job's."""
        if self.folder.is_symlink() or self.folder.is_file():
            self.folder.unlink()
        elif self.folder.is_dir():
            shutil.rmtree(self.folder)

    def on_loader_pass_end(self, event: Any) -> None:
        data, refs = event.data, event.refs or {}
        role = data.get("role")
        served: dict[int, IndexSet] = refs.get("served") or {}
        if role not in ROLES or not served:
            return
        info = refs.get("loader_info")
        loader = self._loader_entry(info, data)
        stream = info.stream.id if info is not None and info.stream is not None else str(loader["id"])
        changed: list[tuple[str, IndexSet]] = []
        for key, indices in served.items():
            base = refs["bases"][key]
            identity = base.identify()
            if identity is None or not len(indices):
                continue
            base_id = base_file_id(identity.key)
            self.bases[base_id] = {"identity": identity.to_dict(), "key": identity.key, "label": base.label,
                                   "names": list(base.names), "size": base.size}
            union = self.unions.setdefault((role, base_id), IndexSet(base.size or 0))
            union.update(indices)
            self.loaders.setdefault((role, base_id), {})[stream] = loader
            changed.append((f"{role}-{base_id}.bits", union))
            if role == "train" and base_id not in self.first_train:
                self.first_train[base_id] = indices.copy()
                self.first_train_meta[base_id] = {"loader": loader, "complete": bool(data.get("complete", True)),
                                                  "pass_index": data.get("pass_index")}
                changed.append((f"first-train-{base_id}.bits", self.first_train[base_id]))
        self._write(changed)

    @staticmethod
    def _loader_entry(info: Any, data: dict[str, Any]) -> dict[str, Any]:
        entry = {"id": data.get("loader_id"), "label": data.get("loader")}
        if info is not None and info.stream is not None:
            entry.update(info.stream.loader_dict(info))
            entry["label"] = info.stream.label
        elif info is not None:
            entry.update(info.to_dict())
            entry["label"] = info.label
        return entry

    # -- files ------------------------------------------------------------------------------------------
    def _write(self, changed: list[tuple[str, IndexSet]]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, indices in changed:
            count = len(indices)
            if self.written.get(name) == count:
                continue  # a union only grows: the same count is the same set
            _write_atomically(self.folder / name, indices.write_to)
            self.written[name] = count
        text = json.dumps(self._index(), sort_keys=True)
        if text != self.index_text:
            _write_atomically(self.folder / INDEX_NAME, lambda file: file.write(text.encode("utf-8")))
            self.index_text = text

    def _index(self) -> dict[str, Any]:
        served: dict[str, dict[str, Any]] = {role: {} for role in ROLES}
        for (role, base_id), union in self.unions.items():
            served[role][base_id] = {"file": f"{role}-{base_id}.bits", "samples": self.written.get(f"{role}-{base_id}.bits", 0),
                                     "loaders": list(self.loaders[(role, base_id)].values())}
        first = {base_id: {"file": f"first-train-{base_id}.bits", "samples": len(s), **self.first_train_meta[base_id]}
                 for base_id, s in self.first_train.items()}
        return {"format": FORMAT, "rank": self.rank.rank, "world_size": self.rank.world_size,
                "bases": self.bases, "served": served, "first_train": first}


# -- reading a rank's export back (the cross-rank checks) -----------------------------------------------
@dataclass
class ServedRecord:
    """One rank's ``served/`` folder: what it served per role and base dataset, read lazily."""

    rank: int
    folder: Path
    index: dict[str, Any]
    _sets: dict[str, IndexSet] = field(default_factory=dict, repr=False)

    @property
    def bases(self) -> dict[str, dict[str, Any]]:
        """``{base file id: {"identity", "key", "label", "names", "size"}}``."""
        return self.index.get("bases") or {}

    def served(self, role: str) -> dict[str, dict[str, Any]]:
        """``{base file id: {"file", "samples", "loaders"}}`` for ``role`` (``train`` / ``eval``)."""
        return (self.index.get("served") or {}).get(role) or {}

    @property
    def first_train(self) -> dict[str, dict[str, Any]]:
        """``{base file id: {"file", "samples", "loader", "complete"}}``: each base's first training pass."""
        return self.index.get("first_train") or {}

    def indices(self, entry: dict[str, Any]) -> IndexSet:
        """The set a ``served()`` / ``first_train`` entry names (an empty set if its file is gone)."""
        name = str(entry.get("file", ""))
        if name not in self._sets:
            path = self.folder / Path(name).name
            try:
                self._sets[name] = IndexSet.from_buffer(path.read_bytes())
            except OSError:
                self._sets[name] = IndexSet()
        return self._sets[name]


def read_served(rank: int, rank_folder: Path) -> ServedRecord | None:
    """The export in ``rank_folder/served/``, or None when the rank left none (or it cannot be read)."""
    folder = Path(rank_folder) / SERVED_FOLDER
    try:
        index = json.loads((folder / INDEX_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        return None
    return ServedRecord(rank=rank, folder=folder, index=index)
