"""Validating on training data: which base-dataset indices each DataLoader serves, and overlaps."""
from .check import OverlapCheck

PROBES = ()
CHECKS = (OverlapCheck,)
