"""Memory that grows epoch after epoch, and the container that holds it."""
from .check import MemoryCheck
from .probe import MemoryProbe

PROBES = (MemoryProbe,)
CHECKS = (MemoryCheck,)
EVENTS = {
    "memory_sample": "at (epoch_end / sampler), epoch, steps, rss, census totals and diff, CUDA allocator and NVML per device",
}
