"""Read a checkpoint back safely and compare it, bit for bit, with what was saved.

* `read_back(source)` loads a file path or bytes with `weights_only=True` and `map_location="cpu"`
  through `torch.serialization.load` (never the patched `torch.load`, never full unpickling). A
  file that needs arbitrary unpickling comes back as `Unverifiable(why)`. A path in the zipfile
  format is loaded with `mmap=True`: the tensors are views of the file's pages (page cache, shared
  with the save that just wrote them), not a second copy in anonymous memory. Bytes and the legacy
  format, which cannot be mapped, are read into memory as before.
  NumPy arrays of numbers (an RNG state, `np.random.get_state()`, as Accelerate's `save_state` and
  many loops keep it) are allowed as `torch.load(weights_only=True)` documents it: their
  reconstruction, `ndarray`, `dtype` and the numeric dtypes, nothing else.
* `compare(saved, loaded)` walks both trees: mappings by key (int keys of optimizer `state`
  included), sequences by position (a tuple and a list with equal items are equal: `betas`), tensors
  by dtype, shape and bits (same-width integer views: NaN-safe, exact on -0.0), NumPy arrays by
  dtype, shape and bytes, floats by bits.
* `leaf_crcs(obj)` gives a CRC-32 per tensor (and repr per scalar), so a later load of the same file
  can name which leaves changed on disk.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

MAX_DIFFS = 20

_INT_OF_WIDTH = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass
class Unverifiable:
    why: str


@dataclass
class Diff:
    path: str
    what: str  # "missing", "extra", "type", "dtype", "shape", "values", "value", "length"
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "what": self.what, "detail": self.detail}


def _numpy_globals() -> list[Any]:
    """What unpickling a NumPy array of numbers needs, as torch's weights_only documentation lists it."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # NumPy 1
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    dtypes = {type(np.dtype(code)) for code in "?bhilqBHILQefdgFDG"}
    return [_reconstruct, scalar, np.ndarray, np.dtype, *sorted(dtypes, key=lambda t: t.__name__)]


def _allowing_numpy() -> Any:
    """Torch's weights_only allowlist, for the read-back, with the NumPy globals the program had not
    allowed itself. The allowlist is the process's: leaving it, ``safe_globals`` removes what it
    added, so it is given only what is missing, and a program's own ``add_safe_globals([np.ndarray,
    ...])`` stays in force after a watched save."""
    allowed = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    if allowed is None:
        return contextlib.nullcontext()
    present = torch.serialization.get_safe_globals()
    return allowed([g for g in _numpy_globals() if g not in present])


def read_back(source: str | bytes | bytearray | memoryview) -> Any:
    """Load `source` (a path or the bytes of one save) safely; Unverifiable when that cannot be done."""
    try:
        with _allowing_numpy():
            if isinstance(source, (bytes, bytearray, memoryview)):
                return torch.serialization.load(io.BytesIO(source), map_location="cpu", weights_only=True)
            if _is_zipfile(source):
                return torch.serialization.load(source, map_location="cpu", weights_only=True, mmap=True)
            return torch.serialization.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure is a reason to report, not to raise
        text = str(exc).strip()
        first = ""
        for line in text.splitlines():
            line = line.strip()
            if "Unsupported global" in line or "GLOBAL" in line:
                first = line
                break
        if not first:
            first = text.splitlines()[0] if text else type(exc).__name__
        first = first.split(" was not an allowed global")[0]
        return Unverifiable(f"{type(exc).__name__}: {first[:300]}")


def _is_zipfile(path: str) -> bool:
    """Whether the file at ``path`` is in torch.save's zipfile format (the only one ``mmap=True`` loads)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _bits(t: torch.Tensor) -> torch.Tensor:
    """A flat same-width integer view of `t` on the CPU (exact, NaN-safe)."""
    t = t.detach()
    if t.is_quantized:
        t = t.int_repr()
    if t.layout != torch.strided:
        t = t.to_dense()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    t = t.contiguous().reshape(-1)
    width = t.element_size()
    target = _INT_OF_WIDTH.get(width, torch.int64)
    if t.dtype == target:
        return t
    return t.view(target)


def tensors_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))


def _tensor_diff(path: str, a: torch.Tensor, b: torch.Tensor) -> Diff | None:
    if a.dtype != b.dtype:
        return Diff(path, "dtype", f"saved {a.dtype}, file holds {b.dtype}")
    if a.shape != b.shape:
        return Diff(path, "shape", f"saved {tuple(a.shape)}, file holds {tuple(b.shape)}")
    if a.device.type == "meta" or b.device.type == "meta":
        return None
    ba, bb = _bits(a), _bits(b)
    if torch.equal(ba, bb):
        return None
    ne = (ba != bb).nonzero()
    n = int(ne.numel())
    first = int(ne.reshape(-1)[0]) if n else 0
    flat_a = a.detach().reshape(-1).cpu()
    flat_b = b.detach().reshape(-1).cpu()
    try:
        sa, sb = repr(flat_a[first].item()), repr(flat_b[first].item())
    except Exception:  # noqa: BLE001
        sa, sb = "?", "?"
    return Diff(path, "values", f"{n} of {ba.numel()} elements differ; first at flat index {first}: saved {sa}, file {sb}")


def _array_diff(path: str, a: np.ndarray, b: Any) -> Diff | None:
    if not isinstance(b, np.ndarray):
        return Diff(path, "type", f"saved ndarray, file holds {type(b).__name__}")
    if a.dtype != b.dtype:
        return Diff(path, "dtype", f"saved {a.dtype}, file holds {b.dtype}")
    if a.shape != b.shape:
        return Diff(path, "shape", f"saved {a.shape}, file holds {b.shape}")
    if a.tobytes() == b.tobytes():
        return None
    if a.dtype.hasobject or not a.size:
        return Diff(path, "values", "the arrays differ")
    void = f"V{a.dtype.itemsize}"
    ne = np.flatnonzero(np.ascontiguousarray(a).reshape(-1).view(void) != np.ascontiguousarray(b).reshape(-1).view(void))
    first = int(ne[0]) if ne.size else 0
    return Diff(path, "values", f"{ne.size} of {a.size} elements differ; first at flat index {first}: "
                                f"saved {a.reshape(-1)[first]!r}, file {b.reshape(-1)[first]!r}")


def _float_equal(a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return struct.pack("<d", a) == struct.pack("<d", b)


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def compare(saved: Any, loaded: Any, path: str = "", limit: int = MAX_DIFFS) -> tuple[list[Diff], int]:
    """Differences between what was saved and what was read back: (first `limit` diffs, total count)."""
    diffs: list[Diff] = []
    total = [0]
    seen: set[int] = set()  # containers already walked (shared or self-referencing structures)

    def add(d: Diff) -> None:
        total[0] += 1
        if len(diffs) < limit:
            diffs.append(d)

    def walk(a: Any, b: Any, p: str) -> None:
        where = p or "<root>"
        if isinstance(a, torch.Tensor):
            if not isinstance(b, torch.Tensor):
                add(Diff(where, "type", f"saved Tensor, file holds {type(b).__name__}"))
                return
            d = _tensor_diff(where, a, b)
            if d is not None:
                add(d)
            return
        if isinstance(a, np.ndarray):
            d = _array_diff(where, a, b)
            if d is not None:
                add(d)
            return
        if isinstance(a, (Mapping, list, tuple)):
            if id(a) in seen:
                return
            seen.add(id(a))
        if isinstance(a, Mapping):
            if not isinstance(b, Mapping):
                add(Diff(where, "type", f"saved {type(a).__name__}, file holds {type(b).__name__}"))
                return
            for k in a:
                if k in b:
                    walk(a[k], b[k], _child(p, k))
                else:
                    add(Diff(_child(p, k), "missing", "saved key absent from the file"))
            for k in b:
                if k not in a:
                    add(Diff(_child(p, k), "extra", "key in the file that was not saved"))
            return
        if isinstance(a, (list, tuple)):
            if not isinstance(b, (list, tuple)):
                add(Diff(where, "type", f"saved {type(a).__name__}, file holds {type(b).__name__}"))
                return
            if len(a) != len(b):
                add(Diff(where, "length", f"saved {len(a)} items, file holds {len(b)}"))
                return
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, _child(p, i))
            return
        if isinstance(a, float) and isinstance(b, float):
            if not _float_equal(a, b):
                add(Diff(where, "value", f"saved {a!r}, file holds {b!r}"))
            return
        if isinstance(a, (bool, int, str, bytes, type(None), float, complex)):
            if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
                add(Diff(where, "type", f"saved {type(a).__name__}, file holds {type(b).__name__}"))
            elif a != b:
                add(Diff(where, "value", f"saved {a!r}, file holds {b!r}"))
            return
        # other objects (torch.dtype, torch.Size, ...): plain equality when it is defined
        try:
            if a != b:
                add(Diff(where, "value", f"saved {a!r:.80}, file holds {b!r:.80}"))
        except Exception:  # noqa: BLE001
            pass

    walk(saved, loaded, path)
    return diffs, total[0]


def leaf_crcs(obj: Any, limit: int = 100_000) -> dict[str, str]:
    """A fingerprint per leaf: CRC-32 of each tensor's bytes, repr of each scalar."""
    out: dict[str, str] = {}
    seen: set[int] = set()

    def walk(x: Any, p: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(x, (Mapping, list, tuple)):
            if id(x) in seen:
                return
            seen.add(id(x))
        where = p or "<root>"
        if isinstance(x, torch.Tensor):
            b = _bits(x)
            out[where] = f"{x.dtype}:{tuple(x.shape)}:{zlib.crc32(b.numpy().view(np.uint8)) if b.numel() else 0:08x}"
        elif isinstance(x, Mapping):
            for k, v in x.items():
                walk(v, _child(p, k))
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, _child(p, i))
        elif isinstance(x, float):
            out[where] = "nan" if math.isnan(x) else struct.pack("<d", x).hex()
        elif isinstance(x, (bool, int, str, type(None))):
            out[where] = repr(x)

    walk(obj, "")
    return out


def crc_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Paths whose fingerprint differs (or that appeared or vanished)."""
    changed = [k for k, v in before.items() if after.get(k) != v]
    changed += [k for k in after if k not in before]
    return changed
