"""Probes patch torch while a run is watched and emit events. Installed in this order, undone in reverse."""

from .checkpoint import CheckpointProbe
from .dataloader import DataLoaderProbe
from .presentation import PresentationProbe
from .training import TrainingProbe

ALL_PROBES = [
    TrainingProbe,
    DataLoaderProbe,
    CheckpointProbe,
    PresentationProbe,
]
