"""Validating on training data: which base-dataset indices each DataLoader serves, and overlaps."""
from .capture import IndexCapture
from .check import OverlapCheck

PROBES = ()
CHECKS = (OverlapCheck,)
PASS_CAPTURES = (IndexCapture,)
