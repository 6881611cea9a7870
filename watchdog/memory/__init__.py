"""Memory that grows epoch after epoch, and the container that holds it."""
from .check import MemoryCheck
from .probe import MemoryProbe

PROBES = (MemoryProbe,)
CHECKS = (MemoryCheck,)
