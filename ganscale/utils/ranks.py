"""Which process am I: global rank and world size, from the trainer, the process group or the launcher.

    rank(trainer)           0 .. world_size - 1 (the trainer's when attached, else the process group's, else 0)
    world_size(trainer)     number of processes (1 without a process group)
    launched_rank_zero()    before any process group exists: False in a process a launcher started as
                            another rank (Lightning's DDP children, torchrun, srun)
    launched_world_size()   WORLD_SIZE set by torchrun (1 without)
    local_rank()            LOCAL_RANK set by the launchers (0 without)

Single-process code calls the same functions and gets 0 and 1.
"""

from __future__ import annotations

import os
from typing import Any, Optional

# LOCAL_RANK/NODE_RANK: Lightning's launcher; RANK/GROUP_RANK/LOCAL_RANK: torchrun; SLURM_PROCID: srun
LAUNCHER_RANK_VARS = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, "") or default)


def process_group():
    """torch.distributed when a process group is initialised, else None."""
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def rank(trainer: Optional[Any] = None) -> int:
    """This process's global rank: the trainer's (Lightning) when one is given, else the process group's, else 0."""
    if trainer is not None:
        return int(trainer.global_rank)
    d = process_group()
    return d.get_rank() if d else 0


def world_size(trainer: Optional[Any] = None) -> int:
    """Number of processes: the trainer's when one is given, else the process group's, else 1."""
    if trainer is not None:
        return int(trainer.world_size)
    d = process_group()
    return d.get_world_size() if d else 1


def launched_rank_zero() -> bool:
    """True unless a launcher started this process as a rank other than global 0 (any of its rank
    variables non-zero). The process that launches the others has none, so it counts as rank 0."""
    return all(_env_int(k, 0) == 0 for k in LAUNCHER_RANK_VARS)


def launched_world_size() -> int:
    """The world size torchrun announces (WORLD_SIZE), 1 when not launched by it."""
    return _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    """This process's rank on its machine (LOCAL_RANK), 0 when not launched."""
    return _env_int("LOCAL_RANK", 0)
