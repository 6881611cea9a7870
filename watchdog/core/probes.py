"""The core's entry in the registry: the loop probes, which write ``run.loop`` (core/loop.py).

Installed first (so undone last): every feature's probes and checks rely on the steps, passes and
epochs they count.
"""
from .loaders import DataLoaderProbe
from .training import TrainingProbe

PROBES = (TrainingProbe, DataLoaderProbe)
CHECKS = ()
