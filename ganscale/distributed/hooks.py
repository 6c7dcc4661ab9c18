"""The hooks a strategy offers the engine, declared once, with the single-process default.

The engine (ganscale.train.module.GANModule) calls a strategy only through these methods, via
`hooks_of(trainer.strategy)`: ganscale's strategies (PlayerDDPStrategy, TwoEngineDeepSpeedStrategy)
implement them; any other strategy (Lightning's single-device one) gets `SingleProcessHooks`.
"""

from __future__ import annotations

from typing import Optional, Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class StrategyHooks(Protocol):
    def player_step(self, module, player: str, loss: Tensor) -> bool:
        """Backward of `loss`, gradient sync, all-rank finite guard and the optimizer step of
        `player`; False when every rank skipped it (ganscale.distributed.players)."""

    def sync_player_grads(self, player: str, params: list[Tensor]) -> None:
        """Average the player's gradients across ranks after its phase's full backward."""

    def unroll_grad_sync(self, grads: list[Optional[Tensor]]) -> list[Optional[Tensor]]:
        """A differentiable cross-rank mean of a look-ahead's surrogate gradients."""

    def unroll_optimizer(self, module, player: str) -> torch.optim.Optimizer:
        """A torch optimizer holding the player's full optimizer state (for a look-ahead)."""

    def sync_replica_buffers(self, nets: Sequence[nn.Module]) -> None:
        """Make floating-point buffers (BatchNorm statistics) equal on every rank."""

    def gather_rows(self, t: Tensor) -> Tensor:
        """Every rank's rows of `t` (same shape on each rank), concatenated in rank order."""

    def gather_rows_differentiable(self, t: Tensor) -> Tensor:
        """Every rank's rows of an activation `t`, in rank order, with gradients back to each rank's rows."""

    def global_mean(self, t: Tensor) -> Tensor:
        """The cross-rank mean of a per-rank mean, differentiably: a loss that is non-linear in a
        batch mean (adversarial cryptography's Eve term) takes the global batch's mean with it."""


class SingleProcessHooks:
    """One process: nothing to synchronise; the step is the generic player step."""

    def player_step(self, module, player: str, loss: Tensor) -> bool:
        from ganscale.distributed.players import player_step

        return player_step(module, player, loss)

    def sync_player_grads(self, player: str, params: list[Tensor]) -> None:
        pass

    def unroll_grad_sync(self, grads):
        return list(grads)

    def unroll_optimizer(self, module, player: str) -> torch.optim.Optimizer:
        return module.optimizer_of(player)

    def sync_replica_buffers(self, nets: Sequence[nn.Module]) -> None:
        pass

    def gather_rows(self, t: Tensor) -> Tensor:
        return t

    def gather_rows_differentiable(self, t: Tensor) -> Tensor:
        return t

    def global_mean(self, t: Tensor) -> Tensor:
        return t


_SINGLE = SingleProcessHooks()


def hooks_of(strategy) -> StrategyHooks:
    return strategy if isinstance(strategy, SingleProcessHooks) else _SINGLE
