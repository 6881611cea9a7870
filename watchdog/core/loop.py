"""The training loop itself: the probes that follow optimizer steps, backward passes, forwards and
DataLoader passes, and so define steps, passes and epochs for every feature."""
from __future__ import annotations

from .loaders import DataLoaderProbe
from .training import TrainingProbe

PROBES = (TrainingProbe, DataLoaderProbe)
CHECKS = ()
