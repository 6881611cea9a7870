"""Checks consume events and report findings. One module per check."""

from .memory import MemoryCheck
from .overlap import OverlapCheck

ALL_CHECKS = [
    OverlapCheck,
    MemoryCheck,
]
