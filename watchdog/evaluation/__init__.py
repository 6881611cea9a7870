"""Epochs with no evaluation, training in eval mode, evaluating in train mode."""
from .cadence import EvalCadenceCheck
from .mode import EvalModeCheck

PROBES = ()
CHECKS = (EvalCadenceCheck, EvalModeCheck)
EVENTS = {
    "eval_window": "the cadence check's verdict on one trained epoch: epoch, first_step, last_step, "
                   "evaluated, by (what evaluated it), eval_every, epoch_source",
}
