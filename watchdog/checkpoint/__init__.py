"""Checkpoints that do not round-trip, and resumes that restore only part of the training state."""
from .completeness import CheckpointCompletenessCheck
from .integrity import CheckpointIntegrityCheck
from .probe import CheckpointProbe
from .resume import ResumeCheck

PROBES = (CheckpointProbe,)
# Completeness before integrity: a save first closes the previous checkpoint (its missing-state
# findings), then is read back (its round-trip findings), as one check used to do it.
CHECKS = (CheckpointCompletenessCheck, CheckpointIntegrityCheck, ResumeCheck)
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
