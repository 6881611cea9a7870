"""Epochs with no evaluation, training in eval mode, evaluating in train mode.

The checks load torch: they are imported when a run asks the registry for them, so ``watchdog
report`` renders this feature's view without torch.
"""
EVENTS = {
    "eval_window": "the cadence check's verdict on one trained epoch: epoch, first_step, last_step, "
                   "evaluated, by (what evaluated it), eval_every, epoch_source",
    "eval_summary": "on one rank of a multi-process run, at its end, for the merge: steps, completed, epochs, "
                    "eval_steps (the first 200 distinct), first_eval (after step 0), held_out, eval_every, "
                    "epoch_source, where",
}


def __getattr__(name: str) -> tuple:
    if name == "VIEWS":  # the views (and report.fold, report.svg) load when a view is made
        from .view import EvaluationView

        globals()["VIEWS"] = (EvaluationView,)
        return globals()[name]
    if name not in ("PROBES", "CHECKS", "CROSS_RANK_CHECKS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "CROSS_RANK_CHECKS":  # the merge: no torch
        from .crossrank import EvalCadenceAcrossRanks

        globals()["CROSS_RANK_CHECKS"] = (EvalCadenceAcrossRanks,)
        return globals()[name]
    from .cadence import EvalCadenceCheck
    from .mode import EvalModeCheck

    globals().update(PROBES=(), CHECKS=(EvalCadenceCheck, EvalModeCheck))
    return globals()[name]
