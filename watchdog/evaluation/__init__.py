"""Epochs with no evaluation, training in eval mode, evaluating in train mode.

The checks load torch: they are imported when a run asks the registry for them, so ``watchdog
report`` renders this feature's view without torch.
"""
from .view import EvaluationView

EVENTS = {
    "eval_window": "the cadence check's verdict on one trained epoch: epoch, first_step, last_step, "
                   "evaluated, by (what evaluated it), eval_every, epoch_source",
}
VIEWS = (EvaluationView,)


def __getattr__(name: str) -> tuple:
    if name not in ("PROBES", "CHECKS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .cadence import EvalCadenceCheck
    from .mode import EvalModeCheck

    globals().update(PROBES=(), CHECKS=(EvalCadenceCheck, EvalModeCheck))
    return globals()[name]
