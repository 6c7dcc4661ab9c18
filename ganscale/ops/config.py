"""Typed configs of the operations component: `checkpoint.*`, `wandb.*`, `guard.*`, `slurm.*`."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ganscale.config.schema import RunConfig

WANDB_MODES = ("auto", "online", "offline", "disabled")


@dataclass
class CheckpointConfig:
    """Full-state checkpoints in <run>/checkpoints, written every `trainer.ckpt_every` iterations,
    at the end and on preemption. Writes are atomic (temporary file, fsync, rename, then a
    `.complete` marker); resuming and sampling only ever read complete checkpoints."""

    keep_last: int = 3
    """Keep the newest K complete checkpoints; older ones are deleted (the best one is kept too)."""
    best_metric: Optional[str] = None
    """Also keep the checkpoint with the best value of this evaluation metric (a key of
    metrics.jsonl, e.g. `kl` or `modes`); null = keep only the newest."""
    best_mode: str = "min"
    """`min` or `max`: whether a lower or a higher `best_metric` is better."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.keep_last < 1:
            out.append(f"keep_last={self.keep_last} must be >= 1 (the newest checkpoint is what a resume needs)")
        if self.best_mode not in ("min", "max"):
            out.append(f"best_mode={self.best_mode!r} unknown; choose min or max")
        if self.best_metric:
            every_c, every_e = root.trainer.ckpt_every, root.trainer.eval_every
            if every_c > 0 and (every_e == 0 or every_c % every_e):
                out.append(f"best_metric={self.best_metric!r} needs an evaluation at every checkpoint: "
                           f"make trainer.eval_every ({every_e}) divide trainer.ckpt_every ({every_c})")
        return out


@dataclass
class WandbConfig:
    """Weights & Biases tracking through Lightning's WandbLogger (rank 0 logs). Files go to
    <run>/wandb; the run id is kept in <run>/wandb_run_id and reused on resume."""

    mode: str = "auto"
    """auto, online, offline or disabled. auto follows W&B's own WANDB_MODE when it is set, else
    logs online when an API key is configured (WANDB_API_KEY or the netrc of `wandb login`) and
    offline otherwise; offline (and online without a key) prints the `wandb sync` command that
    uploads the run later. disabled opts out."""
    project: str = "ganscale"
    """W&B project."""
    entity: Optional[str] = None
    """W&B entity (team or user); null = your default entity."""
    name: Optional[str] = None
    """Display name of the W&B run; null = the run directory's name."""
    tags: list[str] = field(default_factory=list)
    """Tags of the W&B run."""
    group: Optional[str] = None
    """W&B group (e.g. to gather the seeds of one experiment)."""
    log_checkpoints: bool = False
    """Upload every complete checkpoint as a W&B artifact (aliases latest, iter_N, best)."""

    def check(self, root: "RunConfig") -> list[str]:
        if self.mode not in WANDB_MODES:
            return [f"mode={self.mode!r} unknown; choose one of: {', '.join(WANDB_MODES)}"]
        return []


@dataclass
class GuardConfig:
    """What happens after non-finite steps. Every rank skips a step whose loss or gradient is not
    finite on some rank (GANModule._player_step); this section decides when skipping is not enough."""

    max_consecutive_skips: int = 10
    """K: after K consecutive iterations with a skipped step, roll back to the newest complete
    checkpoint written before the streak began; 0 = never roll back."""
    lr_factor: float = 1.0
    """Multiply both players' learning rates by this at every rollback (e.g. 0.5); 1 = keep them."""
    max_rollbacks: int = 3
    """R: the run stops with an error instead of rolling back a (R+1)-th time."""
    debug_nan_d_loss_at: list[int] = field(default_factory=list)
    """DEBUGGING ONLY: make D's loss NaN in every D step of these iterations (0-based), to
    exercise the skip and rollback machinery. Leave empty for real training."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.max_consecutive_skips < 0:
            out.append(f"max_consecutive_skips={self.max_consecutive_skips} must be >= 0 (0 = no rollback)")
        if not 0 < self.lr_factor <= 1:
            out.append(f"lr_factor={self.lr_factor} must be in (0, 1]")
        if self.max_rollbacks < 0:
            out.append(f"max_rollbacks={self.max_rollbacks} must be >= 0")
        if any(i < 0 for i in self.debug_nan_d_loss_at):
            out.append(f"debug_nan_d_loss_at={self.debug_nan_d_loss_at}: iterations are >= 0")
        return out


@dataclass
class SlurmConfig:
    """Preemption inside a run (the sbatch side is `ganscale launch slurm`). On `signal` every
    rank only sets a flag; at the next iteration boundary the ranks agree, write a checkpoint
    together, rank 0 requeues the job and the processes exit 0. Outside Slurm the same signal
    writes a checkpoint and stops the run; running the same command again resumes it."""

    signal: str = "SIGUSR1"
    """Signal that asks for checkpoint-and-requeue (SIGUSR1 or SIGUSR2; Lightning owns SIGTERM);
    `ganscale launch slurm` puts the same one into `#SBATCH --signal`."""
    requeue: bool = True
    """Under Slurm, requeue the job (`scontrol requeue $SLURM_JOB_ID`) after the checkpoint."""
    check_every: int = 1
    """Iterations between the ranks' agreement on the flag (one tiny all-reduce each time)."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if signal_number(self.signal) is None:
            out.append(f"signal={self.signal!r} is not a signal name; use e.g. SIGUSR1, SIGUSR2 or SIGTERM")
        elif signal_number(self.signal) in (signal.SIGKILL, signal.SIGSTOP):
            out.append(f"signal={self.signal!r} cannot be caught; use SIGUSR1")
        elif signal_number(self.signal) in (signal.SIGTERM, signal.SIGINT):
            out.append(f"signal={self.signal!r} is handled by Lightning itself (it aborts the fit); use SIGUSR1 or SIGUSR2")
        if self.check_every < 1:
            out.append(f"check_every={self.check_every} must be >= 1")
        return out


def signal_number(name: str) -> Optional[int]:
    """`SIGUSR1`, `USR1` or `10` -> 10; None if it names no signal."""
    text = str(name).strip().upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    sig = getattr(signal, text, None)
    return int(sig) if isinstance(sig, signal.Signals) else None
