"""Memory that grows epoch after epoch, and the container that holds it.

The probe and the check load torch: they are imported when a run asks the registry for them, so
``watchdog report`` renders this feature's view without torch.
"""
from .view import MemoryView

EVENTS = {
    "memory_sample": "at (epoch_end / sampler), epoch, steps, rss, census totals and diff (or census_stopped: seconds spent, estimated_s for the whole), CUDA allocator and NVML per device",
}
VIEWS = (MemoryView,)


def __getattr__(name: str) -> tuple:
    if name not in ("PROBES", "CHECKS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .check import MemoryCheck
    from .probe import MemoryProbe

    globals().update(PROBES=(MemoryProbe,), CHECKS=(MemoryCheck,))
    return globals()[name]
