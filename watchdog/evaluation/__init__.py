"""Epochs with no evaluation, training in eval mode, evaluating in train mode."""
from .cadence import EvalCadenceCheck
from .mode import EvalModeCheck

PROBES = ()
CHECKS = (EvalCadenceCheck, EvalModeCheck)
