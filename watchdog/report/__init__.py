"""Reporters and the live dashboard: they only read (the event log, or a report built from it)."""
from .presentation import PresentationProbe

PROBES = (PresentationProbe,)
CHECKS = ()
