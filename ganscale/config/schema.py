"""The root config: it only composes the typed configs that each component owns, each with its
component's neutral defaults. The default job (the tuned 2D ring) is a YAML like any other:
configs/toy/ring.yaml (ganscale.config.default_job)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ganscale.data.config import DataConfig
from ganscale.distributed.config import StrategyConfig
from ganscale.games.config import GameConfig
from ganscale.metrics.config import EvalConfig
from ganscale.nets.config import ModelConfig
from ganscale.ops.config import CheckpointConfig, GuardConfig, SlurmConfig, WandbConfig
from ganscale.train.config import (
    GANConfig,
    LossConfig,
    OptimConfig,
    RegConfig,
    RunDirConfig,
    TrainerConfig,
    UnrollConfig,
)


@dataclass
class RunConfig:
    seed: int = 0
    """Global seed: weights, noise and data streams derive from it (and the rank)."""
    config_name: Optional[str] = None
    """Name of the YAML this run came from (set by the CLI; used in the default run name)."""
    run: RunDirConfig = field(default_factory=RunDirConfig)
    """Where the run directory goes and whether to resume."""
    game: GameConfig = field(default_factory=GameConfig)
    """The game the engine plays (ganscale.games): networks, players, phases."""
    data: DataConfig = field(default_factory=DataConfig)
    """Data module and per-rank batch size."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Networks G and D."""
    loss: LossConfig = field(default_factory=LossConfig)
    """GAN loss."""
    reg: RegConfig = field(default_factory=RegConfig)
    """Regularizers: gradient penalty, R1, spectral norm."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Separate optimizers for G and D."""
    gan: GANConfig = field(default_factory=GANConfig)
    """The two-player schedule: n_disc, EMA."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """Length, devices, precision, intervals."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Full-state atomic checkpoints: how many to keep, best by which metric."""
    wandb: WandbConfig = field(default_factory=WandbConfig)
    """Weights & Biases tracking (mode online/offline/disabled, project, tags, ...)."""
    guard: GuardConfig = field(default_factory=GuardConfig)
    """Non-finite steps: rollback after K consecutive skipped iterations, stop after R rollbacks."""
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    """Preemption signal and requeue behaviour inside a Slurm job."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Image metrics (FID, KID, IS, precision/recall) during training and in `ganscale eval`."""
    unroll: UnrollConfig = field(default_factory=UnrollConfig)
    """Unrolled D look-ahead in G's step (Metz et al. 2016)."""
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    """How the players are trained on several processes: single, ddp or deepspeed (ZeRO)."""
