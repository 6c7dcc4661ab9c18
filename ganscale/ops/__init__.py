"""Operations: what keeps a multi-day, multi-node run alive.

    checkpoint/    atomic full-state checkpoints, completion markers, keep-last-K + best
    preemption.py  signal -> all ranks agree -> checkpoint -> `scontrol requeue` -> exit 0
    guard.py       K consecutive non-finite iterations -> roll back (R times at most)
    wandb.py       W&B logging through Lightning's WandbLogger, id kept in the run directory
    slurm.py       sbatch rendering and submission (`ganscale launch slurm`)

`ganscale.train.run` wires these in through the functions below.
"""

from __future__ import annotations

import os
import signal
from typing import Optional


def ops_callbacks(cfg, run_dir: str) -> list:
    """Guard, checkpoint, preemption, in this order (see each class for why)."""
    from ganscale.ops.checkpoint.callback import FullStateCheckpoint
    from ganscale.ops.guard import NonFiniteGuard
    from ganscale.ops.preemption import Preemption

    ckpt = FullStateCheckpoint(cfg, os.path.join(run_dir, "checkpoints"))
    return [NonFiniteGuard(cfg, run_dir, ckpt), ckpt, Preemption(cfg, ckpt)]


def ops_loggers(cfg, run_dir: str) -> list:
    """<run>/metrics.csv (continued on resume) and, when enabled, W&B."""
    from ganscale.ops.csvlog import ResumableCSVLogger
    from ganscale.ops.wandb import build_wandb_logger

    wandb_logger = build_wandb_logger(cfg, run_dir)
    return [ResumableCSVLogger(run_dir)] + ([wandb_logger] if wandb_logger is not None else [])


def ops_plugins(cfg) -> list:
    """Atomic checkpoint IO; under Slurm, Lightning's cluster environment *without* its own
    requeue handler (it would checkpoint inside the signal handler, on rank 0 only)."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    from ganscale.ops.checkpoint.io import AtomicCheckpointIO

    from ganscale.ops.preemption import under_slurm_job

    plugins: list = [AtomicCheckpointIO()]
    if under_slurm_job() and "SLURM_NTASKS" in os.environ:
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins


def prepare_run_dir(run_dir: str) -> list[str]:
    """Before anything runs (launching process only): remove leftovers of interrupted writes."""
    from ganscale.ops.checkpoint.store import clean_stale

    return clean_stale(os.path.join(run_dir, "checkpoints"))


def after_fit(run, failed: bool = False) -> Optional[str]:
    """Close W&B; if the run was preempted, say so and (rank 0, under Slurm) requeue the job.
    Returns "preempted" when training stopped early on the signal."""
    from ganscale.ops.preemption import Preemption, requeue, under_slurm_job
    from ganscale.ops.wandb import finish, wandb_logger

    trainer = run.trainer
    hint = finish(trainer, run.run_dir, failed=failed)
    rank0 = trainer.is_global_zero
    if hint and rank0:
        print(f"ganscale: W&B ran offline; upload it with: {hint}", flush=True)
    pre = next((cb for cb in trainer.callbacks if isinstance(cb, Preemption)), None)
    if failed or pre is None or pre.stopped_at is None:
        return None
    requeue_now = under_slurm_job() and run.cfg.slurm.requeue
    if requeue_now:
        # The checkpoint is complete; the requeue below makes Slurm SIGTERM every task of the job.
        # Nothing is left to save, so every rank lets that signal pass and exits 0 on its own.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if rank0:
        msg = (f"ganscale: stopped by {run.cfg.slurm.signal} at iteration {pre.stopped_at}; "
               f"checkpoint {os.path.basename(pre.checkpoint)}")
        if requeue_now:
            if wandb_logger(trainer) is not None:
                import wandb

                wandb.teardown()  # let W&B's service process write out everything before Slurm kills the job
            msg += "; " + requeue()
        else:
            msg += "; run the same command again to resume"
        print(msg, flush=True)
    return "preempted"
