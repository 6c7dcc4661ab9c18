"""Distributed training of the two players: strategies, per-player precision, cross-rank helpers.

`trainer_kwargs(cfg)` gives the Lightning Trainer its strategy, precision and plugins from
`cfg.strategy` (see config.py) and `cfg.trainer.precision`:

    strategy.name   processes     gradients of a player               optimizer state
    single          1             local                               local
    ddp             devices x N   averaged in its phase (all-reduce)  replicated
    deepspeed       devices x N   reduced by its engine (ZeRO 1/2)     partitioned

docs/distributed.md has the launch commands, the equivalence proof and measured figures.
"""

from __future__ import annotations

from typing import Any

from ganscale.distributed.config import StrategyConfig

__all__ = ["StrategyConfig", "resolve_strategy_name", "trainer_kwargs", "world_size_of"]


def world_size_of(cfg) -> int:
    return cfg.trainer.devices * cfg.trainer.num_nodes


def resolve_strategy_name(cfg) -> str:
    name = cfg.strategy.name
    if name == "auto":
        return "single" if world_size_of(cfg) == 1 else "ddp"
    return name


def _autocast_device(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"


def trainer_kwargs(cfg) -> dict[str, Any]:
    """strategy, precision and plugins for lightning.Trainer."""
    name = resolve_strategy_name(cfg)
    precision = cfg.trainer.precision
    if precision in ("32", "32-true"):
        precision = "32-true"
    plugins: list = []
    if name == "deepspeed":
        from ganscale.distributed.deepspeed import TwoEngineDeepSpeedStrategy

        # The engines run bf16/fp16 themselves (half weights, fp32 master copy); Lightning stays at 32.
        strategy: Any = TwoEngineDeepSpeedStrategy(cfg.strategy, precision, cfg.data.batch_size,
                                                   "cpu" if _autocast_device(cfg.trainer.accelerator) == "cpu" else "gpu")
        return {"strategy": strategy, "precision": "32-true", "plugins": plugins}
    if name == "ddp":
        from ganscale.distributed.ddp import PlayerDDPStrategy

        strategy = PlayerDDPStrategy(cfg.strategy)
    else:
        strategy = "auto"
    if precision in ("bf16-mixed", "16-mixed"):
        from ganscale.distributed.precision import PlayerMixedPrecision

        plugins.append(PlayerMixedPrecision(precision, _autocast_device(cfg.trainer.accelerator),
                                            cfg.strategy.initial_scale_power))
        return {"strategy": strategy, "plugins": plugins}
    return {"strategy": strategy, "precision": precision, "plugins": plugins}
