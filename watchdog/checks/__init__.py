"""Checks consume events and report findings. One module per check."""

from .eval_cadence import EvalCadenceCheck
from .eval_mode import EvalModeCheck
from .overlap import OverlapCheck

ALL_CHECKS = [
    OverlapCheck,
    EvalCadenceCheck,
    EvalModeCheck,
]
