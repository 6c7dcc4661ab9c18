"""BigGAN's standing statistics (Brock et al. 2019, appendix C; BigGAN-PyTorch's
`accumulate_standing_stats`): re-estimate a generator's BatchNorm statistics before sampling.

A G sampled in eval mode normalises with running averages gathered during training. For G_ema those
averages were taken over many earlier weights (the EMA averages buffers too), so they need not match
the averaged weights. Standing statistics run the final weights forward in training mode on a few
batches and keep the exact average of the batch statistics instead.

    with module.standing_stats(16):          # ganscale.train.module.GANModule
        x = module.sample(1000)
    ganscale eval RUN eval.standing_stats=16
    ganscale sample RUN --standing-stats 16 --num 64 --out grid.png
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def tracked_batchnorms(net: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of `net` that keep running statistics."""
    return [m for m in net.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def has_batchnorm(net: nn.Module) -> bool:
    return bool(tracked_batchnorms(net))


@torch.no_grad()
def with_standing_stats(net: nn.Module, forward: Callable[[nn.Module], object], num_batches: int) -> nn.Module:
    """A copy of `net` (in eval mode) whose BatchNorm running statistics are the plain average of the
    batch statistics of `num_batches` calls of `forward(copy)` in training mode; `net` is untouched.
    A net without BatchNorm is returned as it is."""
    if num_batches < 1:
        raise ValueError(f"num_batches={num_batches} must be >= 1")
    if not has_batchnorm(net):
        return net
    out = copy.deepcopy(net)
    bns = tracked_batchnorms(out)
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # torch's cumulative moving average: the mean over every batch seen
    out.train()
    for _ in range(num_batches):
        forward(out)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    return out.eval()
