"""Checks consume events and report findings. One module per check."""

from .checkpoint import CheckpointCheck
from .eval_cadence import EvalCadenceCheck
from .eval_mode import EvalModeCheck
from .memory import MemoryCheck
from .overlap import OverlapCheck
from .resume import ResumeCheck

ALL_CHECKS = [
    OverlapCheck,
    CheckpointCheck,
    ResumeCheck,
    EvalCadenceCheck,
    EvalModeCheck,
    MemoryCheck,
]
