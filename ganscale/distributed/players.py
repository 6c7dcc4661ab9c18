"""One player's optimisation step, the same on one process, under DDP and under DeepSpeed.

`GANModule._player_step(name, loss)` delegates here. The order is what makes N ranks equal one
process with the global batch:

    1. backward of the phase's *full* loss (double backward of R1/GP included) -> local .grad
    2. the strategy averages that player's gradients across ranks (`sync_player_grads`)
    3. finite guard: loss finite on every rank and the synchronised gradient norm finite,
       agreed with one all-reduced flag, so either every rank steps or none does
    4. optimizer step (through the player's own loss scaler under 16-mixed), or skip + count

The engine calls it through `hooks_of(strategy).player_step` (ganscale.distributed.hooks); a strategy
that owns the whole step (DeepSpeed: the engine does backward, reduction and step) overrides it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import Tensor

from ganscale.distributed.collectives import all_agree


def player_params(module, name: str) -> list[Tensor]:
    """The parameters of player `name` that this phase trains (requires_grad switched per phase)."""
    return [p for p in module.player_parameters(name) if p.requires_grad]


def grad_norm(params: list[Tensor], device) -> Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=device)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


@contextmanager
def active_player(strategy, name: str) -> Iterator[None]:
    """Tell the strategy and its precision plugin whose backward/step runs (per-player loss scale)."""
    targets = [strategy, getattr(strategy, "precision_plugin", None)]
    for t in targets:
        if t is not None and hasattr(t, "active_player"):
            t.active_player = name
    try:
        yield
    finally:
        for t in targets:
            if t is not None and hasattr(t, "active_player"):
                t.active_player = None


def player_scaler(strategy) -> Optional["torch.amp.GradScaler"]:
    """The active player's GradScaler under 16-mixed, else None."""
    scaler = getattr(getattr(strategy, "precision_plugin", None), "scaler", None)
    return scaler if scaler is not None and scaler.is_enabled() else None


def player_step(module, name: str, loss: Tensor) -> bool:
    """Backward, synchronise, guard, step. Returns False when every rank skipped the step."""
    from ganscale.distributed.hooks import hooks_of

    strategy = module.trainer.strategy
    opt = module.optimizer_of(name)
    params = player_params(module, name)
    with active_player(strategy, name):
        opt.zero_grad(set_to_none=True)
        module.manual_backward(loss)  # the precision plugin scales by this player's loss scale
        hooks_of(strategy).sync_player_grads(name, params)
        if module.cfg.strategy.zero_missing_grads():  # DeepSpeed's rule, see StrategyConfig.missing_grads
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        gnorm = grad_norm(params, module.device)
        scaler = player_scaler(strategy)
        if scaler is not None:
            gnorm = gnorm / scaler.get_scale()  # host sync (16-mixed only): log the unscaled norm
        ok = bool((torch.isfinite(loss.detach()) & torch.isfinite(gnorm)).item())  # host sync
        # the gradients are already identical on every rank; the loss is not: agree on one flag
        ok = all_agree(ok, module.device)
        module.stats[f"grad_norm/{name}"] = gnorm.detach()
        if ok:
            opt.step()
        else:
            skip_player_step(strategy, opt)
            module.num_skipped[name] += 1
    return ok


def skip_player_step(strategy, opt) -> None:
    """Drop the gradients; under 16-mixed back the player's loss scale off as an overflow would."""
    opt.zero_grad(set_to_none=True)
    scaler = player_scaler(strategy)
    if scaler is not None:  # what GradScaler.update does after an inf step: back off, restart growth count
        state = scaler.state_dict()
        state.update(scale=state["scale"] * state["backoff_factor"], _growth_tracker=0)
        scaler.load_state_dict(state)
