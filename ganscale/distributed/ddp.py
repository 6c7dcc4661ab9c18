"""DDP for two players: replicated G and D, each player's gradients averaged in its own phase.

    ganscale train CONFIG trainer.devices=2 trainer.accelerator=cpu strategy.name=ddp      # gloo
    ganscale train CONFIG trainer.devices=8 trainer.num_nodes=4 strategy.name=ddp          # nccl

Why not torch's DistributedDataParallel around the LightningModule (or around each player):
- DDP all-reduces every parameter that *requires grad* in each backward. A GAN phase trains one
  player while the other's parameters are frozen (G's loss goes through D), so DDP over the whole
  module needs find_unused_parameters (a graph traversal per backward) or hangs.
- D is called several times per phase (reals, fakes, interpolates) and R1/GP run a double
  backward: torch documents DDP as not supporting torch.autograd.grad, and its gradient hooks
  fire during backward, before we know the phase's step should happen.
- The G phase must call D with frozen parameters; a DDP-wrapped D would expect gradients for them.

So the module is not wrapped. After the phase's full backward (double backward included), the
player's gradients are averaged in flat buckets (one all-reduce per `bucket_cap_mb`), which is
exactly the gradient of the global-batch loss (every rank has the same per-rank batch). The cost
is that communication does not overlap the backward; see docs/distributed.md for the measurement.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Optional

from lightning.pytorch.strategies import DDPStrategy

from ganscale.distributed.collectives import (
    all_gather_rows,
    all_reduce_mean_,
    average_gradients_,
    broadcast_module_,
    differentiable_gather_rows,
    differentiable_mean,
    differentiable_mean_all,
)
from ganscale.distributed.config import StrategyConfig
from ganscale.distributed.hooks import SingleProcessHooks
from ganscale.errors import UserError


def replica_buffers(module) -> list:
    """Floating-point buffers that can differ between replicas (BatchNorm statistics). Spectral-norm
    power-iteration vectors are excluded: they are a deterministic function of the (identical)
    weights, so they never diverge."""
    return [b for name, b in module.named_buffers() if b.is_floating_point() and ".parametrizations." not in f".{name}"]


class PlayerDDPStrategy(DDPStrategy, SingleProcessHooks):
    """Lightning DDP strategy that does not wrap the module; `sync_player_grads` averages one
    player's gradients (see ganscale.distributed.players for when it is called). The engine's
    hooks (ganscale.distributed.hooks) it does not override keep their single-process meaning."""

    strategy_name = "ganscale_ddp"

    def __init__(self, cfg: Optional[StrategyConfig] = None, **kwargs: Any):
        cfg = cfg or StrategyConfig(name="ddp")
        super().__init__(process_group_backend=cfg.process_group_backend,
                         timeout=timedelta(seconds=cfg.timeout_s), **kwargs)
        self.gan_cfg = cfg
        self.active_player: Optional[str] = None

    def configure_ddp(self) -> None:
        # Not wrapped (see the module docstring). Replicas start from rank 0's weights, as with DDP.
        broadcast_module_(self.model)

    def sync_player_grads(self, name: str, params: list) -> None:
        average_gradients_(params, self.gan_cfg.bucket_cap_mb)

    def unroll_grad_sync(self, grads: list) -> list:
        """The unrolled look-ahead of D must be the look-ahead of the *synchronised* D: its surrogate
        gradients are averaged across ranks like D's real ones, differentiably (one all-reduce per
        look-ahead step whose backward all-reduces G's incoming gradients), so k look-ahead steps
        on N ranks equal k steps of the distributed D."""
        return differentiable_mean_all(grads)

    def sync_replica_buffers(self, nets) -> None:
        """Average the game's BatchNorm statistics over ranks (the engine calls it at the end of
        every iteration, before the EMA update): each rank's statistics follow its own data."""
        if self.gan_cfg.sync_buffers:
            all_reduce_mean_([b for net in nets for b in replica_buffers(net)], self.gan_cfg.bucket_cap_mb)

    def gather_rows(self, t):
        return all_gather_rows(t)

    def gather_rows_differentiable(self, t):
        return differentiable_gather_rows(t)

    def global_mean(self, t):
        """Differentiable cross-rank mean: the backward all-reduces every rank's incoming gradient,
        so after the player's gradient average each rank holds the gradient of the global-batch
        loss (the same argument as unroll_grad_sync)."""
        return differentiable_mean(t)

    def load_checkpoint(self, checkpoint_path, *args: Any, **kwargs: Any) -> dict:
        checkpoint = super().load_checkpoint(checkpoint_path, *args, **kwargs)
        if "ganscale_deepspeed" in checkpoint and not hasattr(self, "engines"):
            raise UserError(f"{checkpoint_path} was written by strategy.name=deepspeed; resume it with the same "
                            "strategy and world size, or convert it to a plain checkpoint first "
                            "(python -m ganscale.distributed.convert, see docs/distributed.md)")
        return checkpoint
