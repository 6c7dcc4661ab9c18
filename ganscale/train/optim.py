"""Optimizers from OptimizerConfig (each player has its own) and their learning-rate schedule.

The schedule is a pure function of ganscale's iteration counter, written into the optimizer's
param groups before every iteration, rather than a stateful torch LR scheduler: a resumed run
therefore steps with exactly the learning rates of an uninterrupted one without any scheduler
state in the checkpoint, and it works unchanged through DeepSpeed's engine optimizers. The
unrolled look-ahead reads D's learning rate from the same param groups, so it replays the rate
D's real step uses.
"""

from __future__ import annotations

import math

import torch

from ganscale.errors import UserError
from ganscale.train.config import OptimizerConfig


def use_fused(params: list, cfg: OptimizerConfig) -> bool:
    """Whether Adam/AdamW gets its fused kernel (OptimizerConfig.fused): auto = on CUDA only.
    Lightning builds the optimizers after moving the module to its device, so the parameters'
    device is the run's."""
    on_cuda = bool(params) and all(p.is_cuda for p in params)
    if cfg.fused is None:
        return on_cuda
    if cfg.fused and not on_cuda:
        raise UserError("optim.*.fused=true needs the parameters on a GPU (the fused Adam kernel is CUDA's); "
                        "set trainer.accelerator=gpu, or leave fused null (auto) or false on CPU")
    return bool(cfg.fused)


def build_optimizer(params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    params = list(params)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    fused = use_fused(params, cfg)
    # foreach (the multi-tensor default) is what fused replaces; torch refuses both at once
    return cls(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay,
               fused=fused or None)


def lr_at(cfg: OptimizerConfig, iteration: int, max_iters: int) -> float:
    """The learning rate of iteration `iteration` (0-based) of a `max_iters`-iteration run."""
    start = cfg.decay_start * max_iters
    if cfg.schedule == "constant" or iteration < start:
        return cfg.lr
    t = min(1.0, (iteration - start) / max(1.0, max_iters - start))  # 0 at decay_start, 1 at max_iters
    shape = t if cfg.schedule == "linear" else 0.5 * (1 - math.cos(math.pi * t))
    return cfg.lr * (1 - (1 - cfg.final_scale) * shape)


def settings(cfg: OptimizerConfig) -> dict:
    """The param-group settings OptimizerConfig fixes besides the learning rate (which the schedule
    writes every iteration): what build_optimizer passes for cfg.name."""
    if cfg.name == "sgd":
        return {"momentum": cfg.momentum, "weight_decay": cfg.weight_decay}
    return {"betas": tuple(cfg.betas), "eps": cfg.eps, "weight_decay": cfg.weight_decay}


def apply_settings(optimizer, cfg: OptimizerConfig) -> list[str]:
    """Write cfg's settings into every param group; return the ones that differed ("key: old -> new").
    Restoring a checkpoint's optimizer state also restores its param groups' settings, so a run
    resumed (or started from another run's checkpoint) with, say, a new optim.D.weight_decay would
    otherwise keep the old value without a word."""
    opt = getattr(optimizer, "_optimizer", optimizer)
    changed = []
    for key, value in settings(cfg).items():
        for group in (g for g in opt.param_groups if key in g):  # e.g. DeepSpeed's own optimizers
            old = tuple(group[key]) if isinstance(group[key], list) else group[key]  # betas as stored
            if old != value:
                changed.append(f"{key}: {old} -> {value}")
                group[key] = value
    return sorted(set(changed))


def set_lr(optimizer, lr: float) -> None:
    """Write `lr` into every param group (of a LightningOptimizer, a torch or a DeepSpeed optimizer)."""
    opt = getattr(optimizer, "_optimizer", optimizer)  # LightningOptimizer -> the wrapped optimizer
    for group in opt.param_groups:
        group["lr"] = lr
