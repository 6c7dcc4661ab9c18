"""The root config: it only composes the typed configs that each component owns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ganscale.data.config import DataConfig
from ganscale.distributed.config import StrategyConfig
from ganscale.nets.config import ModelConfig
from ganscale.train.config import (
    GANConfig,
    LossConfig,
    OptimConfig,
    RegConfig,
    RunDirConfig,
    TrainerConfig,
)
from ganscale.train.unroll import UnrollConfig


@dataclass
class RunConfig:
    seed: int = 0
    """Global seed: weights, noise and data streams derive from it (and the rank)."""
    config_name: Optional[str] = None
    """Name of the YAML this run came from (set by the CLI; used in the default run name)."""
    run: RunDirConfig = field(default_factory=RunDirConfig)
    """Where the run directory goes and whether to resume."""
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
    unroll: UnrollConfig = field(default_factory=UnrollConfig)
    """Unrolled D look-ahead in G's step (Metz et al. 2016)."""
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    """How the players are trained on several processes: single, ddp or deepspeed (ZeRO)."""
