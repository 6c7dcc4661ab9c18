"""One player's optimisation step, the same on one process, under DDP and under DeepSpeed.

`GANModule._player_step(name, loss)` delegates here. The order is what makes N ranks equal one
process with the global batch:

    1. backward of the phase's *full* loss (double backward of R1/GP included) -> local .grad
    2. the strategy averages that player's gradients across ranks (`sync_player_grads`)
    3. finite guard: loss finite on every rank and the synchronised gradient norm finite,
       agreed with one all-reduced flag, so either every rank steps or none does; gradients
       clipped to the player's optim.*.clip_norm by that same synchronised norm
    4. optimizer step (through the player's own loss scaler under 16-mixed), or skip + count

The engine calls it through `hooks_of(strategy).player_step` (ganscale.distributed.hooks); a strategy
that owns the whole step (DeepSpeed: the engine does backward, reduction and step) overrides it.

What a step costs beyond backward and the optimizer (benchmarks/overhead.py, docs/overhead.md):

- the guard is one `torch._foreach_norm` over the gradients and one flag that stays on the
  device (all-reduced there across ranks). With a fused Adam (the CUDA default) the flag is handed
  to the kernel as `found_inf`: a non-finite step leaves weights and moments untouched (the step
  count is restored), the skip is counted on the device, and nothing waits for the device. Other
  optimizers read loss and norm on the host (free on CPU, one sync on a GPU) and step or skip;
- under fp32 with a strategy that adds nothing to backward or step (one process, ganscale's DDP)
  and no callback hooked into them, backward is `loss.backward()` and the step is the raw
  optimizer's (`direct_steps`); under mixed precision the precision plugin's scaling keeps
  Lightning's `manual_backward` and `LightningOptimizer.step`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Optional, Union

import torch
from torch import Tensor

from ganscale.distributed.collectives import all_agree, all_agree_tensor


def player_params(module, name: str) -> list[Tensor]:
    """The parameters of player `name` that this phase trains (requires_grad switched per phase)."""
    return [p for p in module.player_parameters(name) if p.requires_grad]


def grad_norm(params: list[Tensor], device) -> Tensor:
    """The global L2 norm of the gradients: one `_foreach_norm` per (device, dtype) group."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=device)
    dtype = grads[0].dtype
    if all(g.dtype == dtype for g in grads):
        norms = torch._foreach_norm(grads)
        if dtype == torch.float32:  # the common case: no per-norm casts
            return torch.linalg.vector_norm(torch.stack(norms))
    else:
        norms = [torch.linalg.vector_norm(g) for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


def clip_gradients(params: list[Tensor], norm: Tensor, max_norm: float) -> None:
    """Scale the gradients by min(1, max_norm / (norm + 1e-6)), on the device (no host sync): the
    rule of torch.nn.utils.clip_grad_norm_ and of DeepSpeed's `gradient_clipping`. A non-finite
    norm gives non-finite gradients, and the guard skips that step anyway."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        torch._foreach_mul_(grads, (max_norm / (norm + 1e-6)).clamp(max=1.0).to(grads[0].dtype))


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


def direct_steps(trainer) -> bool:
    """Whether backward and step may bypass Lightning's wrappers: they add nothing when the
    precision is plain fp32, the strategy's backward is the base one (ganscale's DDP does not wrap
    the module) and no callback or the module hooks into backward or the optimizer step."""
    import lightning as L
    from lightning.pytorch.plugins.precision import Precision
    from lightning.pytorch.strategies import SingleDeviceStrategy

    from ganscale.distributed.ddp import PlayerDDPStrategy

    strategy = trainer.strategy
    if type(strategy.precision_plugin) is not Precision:
        return False
    if type(strategy) not in (SingleDeviceStrategy, PlayerDDPStrategy):
        return False
    hooks = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
    for obj, base in [(strategy.lightning_module, L.LightningModule), *((cb, L.Callback) for cb in trainer.callbacks)]:
        if any(getattr(type(obj), h) is not getattr(base, h) for h in hooks):
            return False
    return True


def finite_flag(loss: Tensor, gnorm: Tensor) -> Tensor:
    """The loss and the gradient norm finite on every rank, as a 0-d bool tensor on the device."""
    return all_agree_tensor(torch.isfinite(loss.detach()) & torch.isfinite(gnorm))


def finite_on_every_rank(loss: Tensor, gnorm: Tensor, device) -> bool:
    """`finite_flag` read on the host. On a CPU the two values are read directly (cheaper than the
    flag's three tensor ops); elsewhere the flag is read once (one sync)."""
    if loss.device.type == "cpu":
        return all_agree(math.isfinite(loss.item()) and math.isfinite(gnorm.item()), device)
    return bool(finite_flag(loss, gnorm).item())


def masked_step(opt) -> bool:
    """Whether `opt` can take the finite flag on the device (fused Adam/AdamW's `found_inf`)."""
    return isinstance(opt, (torch.optim.Adam, torch.optim.AdamW)) and bool(opt.defaults.get("fused"))


def player_step(module, name: str, loss: Tensor) -> Union[bool, Tensor]:
    """Backward, synchronise, guard, step. Returns False when every rank skipped the step (on the
    masked path a 0-d bool tensor: truthy as usual, read from the device only when asked)."""
    from ganscale.distributed.hooks import hooks_of

    strategy = module.trainer.strategy
    lopt = module.optimizer_of(name)
    direct = module.direct_steps
    opt = getattr(lopt, "optimizer", lopt) if direct else lopt
    params = player_params(module, name)
    with active_player(strategy, name):
        opt.zero_grad(set_to_none=True)
        if direct:
            loss.backward()
        else:
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
        module.stats[f"grad_norm/{name}"] = gnorm.detach()
        clip = module.optim_section(name).clip_norm
        if clip > 0:  # scaled gradients (16-mixed) scale with their norm: one factor fits both
            clip_gradients(params, gnorm, clip)
        # the gradients are already identical on every rank; the loss is not: agree on one flag
        raw = getattr(lopt, "optimizer", lopt)
        if scaler is None and masked_step(raw):
            ok_t = finite_flag(loss, gnorm)
            raw.found_inf = (~ok_t).float()  # the fused kernel skips the update where it is 1
            try:
                _step(lopt, raw, direct)
            finally:
                del raw.found_inf
            module.count_skip(name, ~ok_t)
            return ok_t
        ok = finite_on_every_rank(loss, gnorm, module.device)  # host read (free on CPU)
        if ok:
            _step(lopt, raw, direct)
        else:
            skip_player_step(strategy, lopt)
            module.count_skip(name, True)
    return ok


def _step(lopt, raw, direct: bool) -> None:
    """The optimizer step; on the direct path Lightning's step counter (global_step) and profiler
    hooks still run, only the strategy/precision round trip is left out."""
    if not direct:
        lopt.step()
        return
    before, after = getattr(lopt, "_on_before_step", None), getattr(lopt, "_on_after_step", None)
    if before is not None:
        before()
    raw.step()
    if after is not None:
        after()


def skip_player_step(strategy, opt) -> None:
    """Drop the gradients; under 16-mixed back the player's loss scale off as an overflow would."""
    opt.zero_grad(set_to_none=True)
    scaler = player_scaler(strategy)
    if scaler is not None:  # what GradScaler.update does after an inf step: back off, restart growth count
        state = scaler.state_dict()
        state.update(scale=state["scale"] * state["backoff_factor"], _growth_tracker=0)
        scaler.load_state_dict(state)
