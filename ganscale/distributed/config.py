"""Typed config of the distributed strategy (`strategy.*`).

    ganscale train CONFIG trainer.devices=2 strategy.name=ddp
    ganscale train CONFIG trainer.devices=8 trainer.num_nodes=4 strategy.name=deepspeed strategy.zero_stage=2

Presets live in configs/strategy/*.yaml and compose like any other YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ganscale.config.schema import RunConfig

STRATEGIES = ("auto", "single", "ddp", "deepspeed")
BACKENDS = ("gloo", "nccl")
ZERO3_UNSUPPORTED = (
    "strategy.zero_stage=3 is not supported for GAN training: ZeRO-3 partitions the parameters "
    "themselves and gathers them only around its own forward/backward hooks, but ganscale needs "
    "D's full weights in a second backward (R1 and the gradient penalty differentiate D's input "
    "gradient; with ZeRO-3 that backward fails on freed weights), in the functional unrolled "
    "look-ahead of D, and G's full weights outside forward (G_ema, sampling, checkpoints). "
    "Use strategy.zero_stage=2 (gradients and optimizer state partitioned: about 2P + 2P + 12P/N "
    "bytes per rank for P parameters with Adam in mixed precision) or zero_stage=1"
)


@dataclass
class StrategyConfig:
    """How the two players are trained on several processes (GPUs or CPU processes, across nodes)."""

    name: str = "auto"
    """auto: `single` when trainer.devices x trainer.num_nodes is 1, else `ddp`.
    single: one process. ddp: replicated G and D, each player's gradients averaged across ranks in
    its own phase (bucketed all-reduce). deepspeed: one DeepSpeed engine per player (ZeRO 1 or 2)."""
    process_group_backend: Optional[str] = None
    """gloo or nccl; default: nccl on GPUs, gloo on CPU."""
    timeout_s: int = 1800
    """Seconds a collective may wait for the other ranks before the run fails."""
    bucket_cap_mb: float = 25.0
    """ddp: gradients are all-reduced in flat buckets of at most this many MiB."""
    sync_buffers: bool = True
    """ddp and deepspeed: average G's and D's floating-point buffers (BatchNorm running statistics)
    over ranks at the end of every iteration, so the replicas stay identical (torch's DDP would
    broadcast rank 0's instead)."""
    zero_stage: int = 2
    """deepspeed: ZeRO stage of both engines. 1 partitions the optimizer state, 2 also the gradients.
    3 (parameters too) is refused with an explanation."""
    zero_bucket_size: int = 50_000_000
    """deepspeed: elements per ZeRO reduce/all-gather bucket."""
    overlap_comm: bool = False
    """deepspeed: overlap gradient reduction with the backward (GPUs; costs extra bucket memory)."""
    missing_grads: str = "auto"
    """What a phase does with a trained parameter that got no gradient (e.g. D's output bias in
    the R1 step: it does not change D's input gradient). skip: not updated, as torch optimizers do.
    zero: updated with a zero gradient (momentum still moves it), which is what DeepSpeed ZeRO does
    (its flat gradient partitions cannot leave one parameter out). auto: zero under deepspeed,
    skip otherwise. Set zero everywhere to get identical updates from every strategy."""
    initial_scale_power: int = 16
    """16-mixed: each player's dynamic loss scale starts at 2**initial_scale_power."""

    def zero_missing_grads(self) -> bool:
        return self.missing_grads == "zero" or (self.missing_grads == "auto" and self.name == "deepspeed")

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.name not in STRATEGIES:
            out.append(f"name={self.name!r} unknown; choose one of: {', '.join(STRATEGIES)}")
        if self.process_group_backend is not None and self.process_group_backend not in BACKENDS:
            out.append(f"process_group_backend={self.process_group_backend!r} unknown; choose one of: "
                       f"{', '.join(BACKENDS)} (or leave it unset)")
        world = root.trainer.devices * root.trainer.num_nodes
        if self.name == "single" and world > 1:
            out.append(f"name=single runs one process but trainer.devices x trainer.num_nodes = {world}; "
                       "use strategy.name=ddp or deepspeed, or trainer.devices=1")
        if root.trainer.accelerator == "cpu" and self.process_group_backend == "nccl":
            out.append("process_group_backend=nccl needs GPUs; use gloo with trainer.accelerator=cpu")
        if self.timeout_s < 1:
            out.append(f"timeout_s={self.timeout_s} must be >= 1")
        if self.bucket_cap_mb <= 0:
            out.append(f"bucket_cap_mb={self.bucket_cap_mb} must be > 0")
        if self.name == "deepspeed":
            if self.zero_stage == 3:
                out.append(ZERO3_UNSUPPORTED)
            elif self.zero_stage not in (1, 2):
                out.append(f"zero_stage={self.zero_stage} unknown; choose 1 or 2 (or strategy.name=ddp for none)")
            if self.zero_bucket_size < 1:
                out.append(f"zero_bucket_size={self.zero_bucket_size} must be >= 1")
        if self.missing_grads not in ("auto", "skip", "zero"):
            out.append(f"missing_grads={self.missing_grads!r} unknown; choose one of: auto, skip, zero")
        elif self.name == "deepspeed" and self.missing_grads == "skip":
            out.append("missing_grads=skip is impossible with strategy.name=deepspeed: ZeRO's flat gradient "
                       "partitions give every parameter a gradient (zero if unused); use missing_grads=zero or auto")
        if not 0 <= self.initial_scale_power <= 32:
            out.append(f"initial_scale_power={self.initial_scale_power} must be in [0, 32]")
        return out
