"""Gradient estimators for generators with discrete outputs, as pure functions.

    gumbel_softmax(logits, tau, gumbel, hard)     categorical: softmax((logits + g) / tau), g ~ Gumbel(0, 1)
    binary_concrete(logits, tau, noise, hard)     Bernoulli: sigmoid((logit + n) / tau), n ~ Logistic(0, 1)
    reinforce_loss(log_prob, reward, baseline)    surrogate whose gradient is (r - b) * grad log p(x)
    update_baseline(buffer, mean_reward, decay)   the moving-average baseline b
    bgan_weights(d_logits)                        normalised importance weights over M samples per z
    bgan_loss(log_prob, d_logits)                 -sum_m w_m log p(x_m | z), averaged over z

Every random draw is an argument (noise tensors, or a torch.Generator), so the game draws it
through the engine's seeded `m.draw` (N ranks == one process, bit-exact resume).

Binary concrete is the two-class Gumbel-softmax: with logits (l, 0) the difference of two Gumbel
variables is a Logistic one, so sigmoid((l + n) / tau) is the first class's relaxed probability
and its hard value 1[l + n > 0] is a Bernoulli(sigmoid(l)) draw (Maddison et al. 2017).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def temperature_at(iteration: int, start: float, end: float, anneal_iters: int) -> float:
    """Geometric anneal from `start` at iteration 0 to `end` at `anneal_iters`, then constant
    (Jang et al. 2017 anneal exponentially)."""
    if anneal_iters <= 0:
        return end
    t = min(iteration / anneal_iters, 1.0)
    return start * (end / start) ** t


def sample_gumbel(shape, generator: Optional[torch.Generator] = None, device=None) -> Tensor:
    """Standard Gumbel noise -log(-log u), u ~ U(0, 1) clamped away from 0 and 1."""
    u = torch.rand(shape, generator=generator, device=device)
    tiny = torch.finfo(u.dtype).tiny
    return -torch.log(-torch.log(u.clamp(tiny, 1 - 1e-7)))


def logistic_from_uniform(u: Tensor) -> Tensor:
    """Logistic(0, 1) noise log u - log(1 - u) from uniforms (clamped away from 0 and 1)."""
    u = u.clamp(1e-7, 1 - 1e-7)
    return torch.log(u) - torch.log1p(-u)


def straight_through(hard: Tensor, soft: Tensor) -> Tensor:
    """`hard` in the forward pass, the gradient of `soft` in the backward pass."""
    return hard + soft - soft.detach()


def gumbel_softmax(logits: Tensor, tau: float, gumbel: Tensor, hard: bool = False) -> Tensor:
    """Relaxed one-hot samples over the last dimension; `hard`: one-hot argmax forward,
    straight-through gradient. argmax(logits + gumbel) is an exact categorical draw."""
    soft = F.softmax((logits + gumbel) / tau, dim=-1)
    if not hard:
        return soft
    index = soft.argmax(-1, keepdim=True)
    return straight_through(torch.zeros_like(soft).scatter_(-1, index, 1.0), soft)


def binary_concrete(logits: Tensor, tau: float, noise: Tensor, hard: bool = False) -> Tensor:
    """Relaxed Bernoulli(sigmoid(logits)) samples in [0, 1] from Logistic `noise`; `hard`: the
    exact {0, 1} draw forward, the relaxed gradient backward."""
    soft = torch.sigmoid((logits + noise) / tau)
    if not hard:
        return soft
    return straight_through((logits + noise > 0).to(soft.dtype), soft)


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x) of {0, 1} samples x under Bernoulli(sigmoid(logits)), summed over all but the
    first dimension: one value per sample."""
    lp = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return lp.flatten(1).sum(1)


def reinforce_loss(log_prob: Tensor, reward: Tensor, baseline: Tensor | float = 0.0) -> Tensor:
    """The surrogate -mean((r - b) * log p(x)): its gradient is the REINFORCE estimate of
    -grad E[r] (reward and baseline carry no gradient). A baseline independent of x keeps the
    estimate unbiased and lowers its variance."""
    advantage = (reward - baseline).detach()
    return -(advantage * log_prob).mean()


def update_baseline(baseline: Tensor, mean_reward: Tensor, decay: float, first: bool) -> Tensor:
    """REINFORCE's moving-average baseline: returns the value to use now (the first batch's mean
    reward when `first`, instead of 0) and updates the buffer in place to decay * b + (1 - decay) *
    mean_reward, so a baseline never includes the rewards it is subtracted from."""
    if first:
        baseline.copy_(mean_reward)
    used = baseline.clone()
    baseline.mul_(decay).add_((1 - decay) * mean_reward)
    return used


def bgan_weights(d_logits: Tensor) -> Tensor:
    """Normalised importance weights of boundary-seeking GAN for D logits of shape [N, M] (M
    samples per z): w_m = D/(1 - D) = exp(logit_m), normalised over the M samples of each z,
    i.e. softmax over the last dimension (Hjelm et al. 2018, eq. 9)."""
    return F.softmax(d_logits.detach(), dim=-1)


def bgan_loss(log_prob: Tensor, d_logits: Tensor) -> Tensor:
    """G's BGAN loss for discrete samples: -(1/N) sum_n sum_m w_nm log p(x_nm | z_n), with
    log_prob and d_logits of shape [N, M] (the weights carry no gradient)."""
    return -(bgan_weights(d_logits) * log_prob).sum(-1).mean()


__all__ = ["bernoulli_log_prob", "bgan_loss", "bgan_weights", "binary_concrete", "gumbel_softmax",
           "logistic_from_uniform", "reinforce_loss", "sample_gumbel", "straight_through", "temperature_at",
           "update_baseline"]
