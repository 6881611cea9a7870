"""Which process of a multi-process launch this is: rank, world size, node, and the launch itself.

Read once from the launcher's environment (``torchrun`` / ``python -m torch.distributed.run`` set
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``, ``TORCHELASTIC_RUN_ID``,
``TORCHELASTIC_RESTART_COUNT``, ``MASTER_ADDR``, ``MASTER_PORT``). A process that is not one of
several (no ``WORLD_SIZE``, or 1) has no ``RankInfo``: it is a single-process run.
"""
from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from typing import Any, Mapping


def _int(environ: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    value = environ.get(name)
    if value is None or not value.strip().lstrip("-").isdigit():
        return default
    return int(value)


@dataclass(frozen=True)
class RankInfo:
    """This process's place in a launch of ``world_size`` processes."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    # The same on every process of one launch (and different from the launch before it): the
    # launcher's run id, rendezvous address and restart count.
    job: str
    host: str
    pid: int
    agent_pid: int  # the launcher's agent on this node (the parent process)
    # Which watched run of this process this is (0 for the first): a script that watches two
    # functions in turn (train, then test) has two runs per rank, merged separately.
    watch_index: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, watch_index: int = 0) -> "RankInfo | None":
        """This process's rank under a launcher, or None for a single-process run."""
        env = os.environ if environ is None else environ
        world = _int(env, "WORLD_SIZE")
        rank = _int(env, "RANK")
        if world is None or world <= 1 or rank is None or not 0 <= rank < world:
            return None
        local_rank = _int(env, "LOCAL_RANK", rank) or 0
        job = ":".join((env.get("TORCHELASTIC_RUN_ID", "none"), env.get("MASTER_ADDR", ""),
                        env.get("MASTER_PORT", ""), env.get("TORCHELASTIC_RESTART_COUNT", "0")))
        return cls(rank=rank, world_size=world, local_rank=local_rank,
                   local_world_size=_int(env, "LOCAL_WORLD_SIZE", world) or world,
                   node_rank=_int(env, "GROUP_RANK", 0) or 0, job=job, host=socket.gethostname(),
                   pid=os.getpid(), agent_pid=os.getppid(), watch_index=watch_index)

    @property
    def folder_name(self) -> str:
        """The rank's own report folder under the report directory: ``rank<N>``."""
        return f"rank{self.rank}"

    @property
    def shows_dashboard(self) -> bool:
        """Only local rank 0 of node 0 draws a dashboard (every rank of a node shares its terminal)."""
        return self.local_rank == 0 and self.node_rank == 0

    def to_dict(self) -> dict[str, Any]:
        """As logged in ``run_start``'s ``rank``: the fields, and ``shows_dashboard`` (so the views
        read the rule's outcome instead of re-deciding it from the environment)."""
        return {**asdict(self), "shows_dashboard": self.shows_dashboard}
