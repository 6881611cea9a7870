"""Checkpoints that do not round-trip, and resumes that restore only part of the training state.

The probe and the checks load torch: they are imported when a run asks the registry for them, so
``watchdog report`` renders this feature's view without torch.
"""
EVENTS = {
    "checkpoint_saved": "target (path/bytesio/file), path, bytes, steps, where, holds; refs: obj, inventory",
    "checkpoint_loaded": "a torch.load: path, target, steps, holds; refs: inventory",
    "state_loaded": "a load_state_dict of an optimizer / scheduler / scaler / module; refs: target, state",
    "scheduler_seen": "first step of an LR scheduler: type, id, last_epoch, lrs",
    "scaler_seen": "first update of a GradScaler: type, id, scale",
    "optimizer_step_after_load": "an optimizer's first step after a load: type, steps, lrs, where; refs: nearby",
    "checkpoint_verified": "a read-back's result: file, path, bytes, equal, changed",
    "checkpoint_summary": "the run's checkpoints at the end",
}


def __getattr__(name: str) -> tuple:
    if name == "VIEWS":  # the views (and report.fold, report.svg) load when a view is made
        from .view import CheckpointsView

        globals()["VIEWS"] = (CheckpointsView,)
        return globals()[name]
    if name not in ("PROBES", "CHECKS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .completeness import CheckpointCompletenessCheck
    from .integrity import CheckpointIntegrityCheck
    from .probe import CheckpointProbe
    from .resume import ResumeCheck

    # Completeness before integrity: a save first closes the previous checkpoint (its missing-state
    # findings), then is read back (its round-trip findings), as one check used to do it.
    globals().update(PROBES=(CheckpointProbe,),
                     CHECKS=(CheckpointCompletenessCheck, CheckpointIntegrityCheck, ResumeCheck))
    return globals()[name]
