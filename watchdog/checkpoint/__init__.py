"""Checkpoints that do not round-trip, and resumes that restore only part of the training state."""
from .check import CheckpointCheck
from .probe import CheckpointProbe
from .resume import ResumeCheck

PROBES = (CheckpointProbe,)
CHECKS = (CheckpointCheck, ResumeCheck)
