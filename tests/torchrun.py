"""Launching real ``torchrun`` jobs in tests: 2 ranks, gloo on CPU, every wait bounded.

``launch(tmp_path, script, ...)`` writes ``script`` to ``tmp_path/train.py`` and runs
``python -m torch.distributed.run --standalone --nproc-per-node N -m watchdog run --report-dir DIR
train.py`` (or, with ``watched=False``, ``train.py`` itself, for scripts that use ``@watchdog.watch``;
with ``launcher="torchrun"``, the ``torchrun`` command installed beside the interpreter).
The scripts build their process group with ``DIST_INIT`` (gloo) and keep data and epochs small.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 180

# What a training script under torchrun starts with (gloo: CPU only).
DIST_INIT = textwrap.dedent("""\
    import os
    import torch
    import torch.distributed as dist
    dist.init_process_group("gloo")
    RANK, WORLD = dist.get_rank(), dist.get_world_size()
    """)


@dataclass
class Job:
    proc: subprocess.CompletedProcess
    report_dir: Path

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr


def launch(tmp_path: Path, script: str, *, nproc: int = 2, watched: bool = True, options: tuple[str, ...] = (),
           args: tuple[str, ...] = (), env: dict[str, str] | None = None, timeout: float = TIMEOUT_S,
           launcher: str = "module") -> Job:
    """Run ``script`` under a real torchrun with ``nproc`` ranks; returns when every rank has exited."""
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(script))
    report_dir = tmp_path / "wd"
    start = [str(Path(sys.executable).with_name("torchrun"))] if launcher == "torchrun" else [
        sys.executable, "-m", "torch.distributed.run"]
    command = [*start, "--standalone", f"--nproc-per-node={nproc}"]
    if watched:
        command += ["-m", "watchdog", "run", "--report-dir", str(report_dir), *options, str(path), *args]
    else:
        command += [str(path), *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "WATCHDOG_REPORT_DIR": str(report_dir),
                **(env or {})}
    full_env.pop("COLUMNS", None)
    proc = subprocess.run(command, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=timeout)
    return Job(proc, report_dir)
