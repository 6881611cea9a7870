"""Where memory numbers come from: process RSS, the CUDA caching allocator, and NVML.

Each source answers with plain numbers or ``None`` ("unavailable"); none of them ever raises into
the caller, initialises CUDA, or syncs the host with a device.

* :class:`RssReader` reads the process's resident set size from a kept-open ``/proc/self/statm``
  with one ``os.pread`` (a few microseconds); psutil is the fallback where ``/proc`` is missing.
* :class:`CudaAllocatorReader` reads the caching allocator's counters per device with
  ``torch.cuda.memory_stats_as_nested_dict(device=i)``: host-side counters, no sync, no context
  creation. It reads nothing unless the user's program already initialised CUDA.
* :class:`NvmlReader` asks NVML (the ``nvidia-ml-py`` distribution, imported as ``pynvml``) for
  device-wide used/total memory. ``nvmlInit`` runs once, lazily, in a background thread (it can take
  seconds, or hang, on a sick GPU host); a missing library or driver is remembered as
  "unavailable". NVML numbers devices physically, ignoring ``CUDA_VISIBLE_DEVICES``, so devices are
  matched to torch's indices by UUID.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

# --------------------------------------------------------------------------------------------
# CPU: resident set size


class RssReader:
    """The process's resident set size in bytes, or ``None`` when it cannot be read."""

    def __init__(self, statm_path: str = "/proc/self/statm"):
        self._fd: int | None = None
        self._page = 4096
        self._psutil_process: Any = None
        try:
            self._page = os.sysconf("SC_PAGE_SIZE")
            self._fd = os.open(statm_path, os.O_RDONLY)
        except (OSError, ValueError, AttributeError):
            self._fd = None
            try:
                import psutil

                self._psutil_process = psutil.Process()
            except Exception:  # psutil missing or the platform unsupported: RSS unavailable
                self._psutil_process = None

    @property
    def available(self) -> bool:
        return self._fd is not None or self._psutil_process is not None

    def read(self) -> int | None:
        fd = self._fd
        if fd is not None:
            try:
                fields = os.pread(fd, 128, 0).split()
                return int(fields[1]) * self._page
            except (OSError, ValueError, IndexError):
                return None
        if self._psutil_process is not None:
            try:
                return int(self._psutil_process.memory_info().rss)
            except Exception:
                return None
        return None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def machine_ram_bytes() -> int | None:
    """Total physical memory of the machine, or ``None``."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        return None


# --------------------------------------------------------------------------------------------
# CUDA: the caching allocator's counters


@dataclass
class CudaMemory:
    """One device's caching-allocator counters (bytes unless named ``num_*``)."""

    device: int
    allocated: int
    reserved: int
    active: int
    inactive_split: int
    peak_allocated: int
    num_alloc_retries: int
    num_ooms: int
    total: int | None = None

    @property
    def reserved_unallocated(self) -> int:
        return max(0, self.reserved - self.allocated)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "allocated": self.allocated,
            "reserved": self.reserved,
            "active": self.active,
            "inactive_split": self.inactive_split,
            "peak_allocated": self.peak_allocated,
            "num_alloc_retries": self.num_alloc_retries,
            "num_ooms": self.num_ooms,
            "total": self.total,
        }


def _all_current(stats: dict, name: str, which: str = "current") -> int:
    try:
        return int(stats[name]["all"][which])
    except (KeyError, TypeError, ValueError):
        return 0


def cuda_memory_from_nested_stats(device: int, stats: dict, total: int | None) -> CudaMemory:
    """Builds :class:`CudaMemory` from ``torch.cuda.memory_stats_as_nested_dict`` output."""
    return CudaMemory(
        device=device,
        allocated=_all_current(stats, "allocated_bytes"),
        reserved=_all_current(stats, "reserved_bytes"),
        active=_all_current(stats, "active_bytes"),
        inactive_split=_all_current(stats, "inactive_split_bytes"),
        peak_allocated=_all_current(stats, "allocated_bytes", "peak"),
        num_alloc_retries=int(stats.get("num_alloc_retries", 0) or 0),
        num_ooms=int(stats.get("num_ooms", 0) or 0),
        total=total,
    )


class CudaAllocatorReader:
    """Per-device caching-allocator counters, read without a sync and without initialising CUDA.

    ``cuda`` is the ``torch.cuda`` module (tests pass a fake). Devices the program never touched
    (nothing reserved) are left out.
    """

    def __init__(self, cuda: Any = None):
        if cuda is None:
            import torch

            cuda = torch.cuda
        self._cuda = cuda
        self._totals: dict[int, int | None] = {}

    def active(self) -> bool:
        """Whether the program has initialised CUDA (we never do it ourselves)."""
        try:
            return bool(self._cuda.is_initialized())
        except Exception:
            return False

    def total_memory(self, device: int) -> int | None:
        if device not in self._totals:
            try:
                self._totals[device] = int(self._cuda.get_device_properties(device).total_memory)
            except Exception:
                self._totals[device] = None
        return self._totals[device]

    def read(self) -> list[CudaMemory]:
        if not self.active():
            return []
        out = []
        try:
            count = int(self._cuda.device_count())
        except Exception:
            return []
        for device in range(count):
            try:
                stats = self._cuda.memory_stats_as_nested_dict(device=device)
            except Exception:
                continue
            if not stats:
                continue
            mem = cuda_memory_from_nested_stats(device, stats, None)
            if mem.reserved == 0 and mem.allocated == 0:
                continue
            mem.total = self.total_memory(device)
            out.append(mem)
        return out

    def uuids(self) -> dict[int, str]:
        """torch device index -> normalised UUID, for matching NVML devices."""
        if not self.active():
            return {}
        out = {}
        try:
            count = int(self._cuda.device_count())
        except Exception:
            return {}
        for device in range(count):
            try:
                out[device] = normalise_uuid(str(self._cuda.get_device_properties(device).uuid))
            except Exception:
                continue
        return out


def normalise_uuid(text: Any) -> str:
    """``"GPU-58d5ec7c-..."`` (NVML) and ``"58d5ec7c-..."`` (torch) -> ``"58d5ec7c-..."``."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    text = str(text).strip().lower()
    for prefix in ("gpu-", "mig-"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text


# --------------------------------------------------------------------------------------------
# NVML: device-wide memory, initialised lazily off the training thread


@dataclass
class NvmlMemory:
    device: int  # torch's index (after CUDA_VISIBLE_DEVICES)
    used: int
    total: int


@dataclass
class NvmlReader:
    """Device-wide memory from NVML, matched to torch's device indices by UUID.

    States: ``"idle"`` (not started), ``"starting"`` (``nvmlInit`` running in its thread),
    ``"ready"``, ``"unavailable"`` (``reason`` says why; never retried). ``load`` returns the
    ``pynvml`` module (tests pass a fake).
    """

    load: Callable[[], Any] | None = None
    state: str = "idle"
    reason: str = ""
    _nvml: Any = None
    _handles: dict[str, Any] = field(default_factory=dict)  # normalised uuid -> handle
    _by_index: dict[int, Any] = field(default_factory=dict)  # nvml index -> handle
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Starts ``nvmlInit`` in a daemon thread; returns at once."""
        with self._lock:
            if self.state != "idle":
                return
            self.state = "starting"
        self._thread = threading.Thread(target=self._init, name="watchdog-nvml-init", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> str:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.state

    def _init(self) -> None:
        try:
            nvml = self.load() if self.load is not None else _import_pynvml()
            nvml.nvmlInit()
            handles, by_index = {}, {}
            for index in range(int(nvml.nvmlDeviceGetCount())):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                by_index[index] = handle
                try:
                    handles[normalise_uuid(nvml.nvmlDeviceGetUUID(handle))] = handle
                except Exception:
                    pass
            self._nvml, self._handles, self._by_index = nvml, handles, by_index
            self.state = "ready"
        except BaseException as exc:  # a missing library/driver is "unavailable", never a crash
            self.reason = f"{type(exc).__name__}: {exc}"
            self.state = "unavailable"

    def read(self, torch_uuids: dict[int, str]) -> list[NvmlMemory] | None:
        """Used/total per torch device; ``None`` while NVML is not ready or unavailable.

        ``torch_uuids`` maps torch's indices to normalised UUIDs. Without UUIDs, indices are
        trusted only when ``CUDA_VISIBLE_DEVICES`` is unset (then torch's and NVML's agree).
        """
        if self.state != "ready":
            return None
        nvml = self._nvml
        pairs = []
        if torch_uuids:
            for device, uuid in sorted(torch_uuids.items()):
                handle = self._handles.get(uuid)
                if handle is not None:
                    pairs.append((device, handle))
        elif os.environ.get("CUDA_VISIBLE_DEVICES") is None:
            pairs = sorted(self._by_index.items())
        out = []
        for device, handle in pairs:
            try:
                info = nvml.nvmlDeviceGetMemoryInfo(handle)
                out.append(NvmlMemory(device=device, used=int(info.used), total=int(info.total)))
            except Exception:
                continue
        return out


def _import_pynvml() -> Any:
    import pynvml  # the nvidia-ml-py distribution

    return pynvml
