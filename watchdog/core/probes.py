"""The core's entry in the registry: the loop probes, which write ``run.loop`` (core/loop.py).

Installed first (so undone last): every feature's probes and checks rely on the steps, passes and
epochs they count. They load torch, so they are imported when a run asks the registry for them.
"""


def __getattr__(name: str) -> tuple:
    if name not in ("PROBES", "CHECKS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .loaders import DataLoaderProbe
    from .training import TrainingProbe

    globals().update(PROBES=(TrainingProbe, DataLoaderProbe), CHECKS=())
    return globals()[name]
