"""GAN losses on raw discriminator outputs (logits / critic values), averaged over the batch.

Each loss gives D's loss split into its real and fake parts (logged as loss/D/real and
loss/D/fake; D minimises their sum) and G's loss. sigma is the logistic function and
softplus(t) = log(1 + e^t), so -log sigma(t) = softplus(-t) and -log(1 - sigma(t)) = softplus(t).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ganscale.registry import LOSSES


@dataclass(frozen=True)
class GANLoss:
    name: str
    d_real: Callable[[Tensor], Tensor]
    d_fake: Callable[[Tensor], Tensor]
    g: Callable[[Tensor], Tensor]


def bce_d_real(r: Tensor) -> Tensor:
    """D on reals, original GAN: -E[log sigma(D(x))] = E[softplus(-D(x))]."""
    return F.softplus(-r).mean()


def bce_d_fake(f: Tensor) -> Tensor:
    """D on fakes, original GAN: -E[log(1 - sigma(D(G(z))))] = E[softplus(D(G(z)))]."""
    return F.softplus(f).mean()


def minimax_g(f: Tensor) -> Tensor:
    """G, saturating minimax (Goodfellow et al. 2014): E[log(1 - sigma(D(G(z))))] = -E[softplus(D(G(z)))]."""
    return -F.softplus(f).mean()


def nonsaturating_g(f: Tensor) -> Tensor:
    """G, non-saturating: -E[log sigma(D(G(z)))] = E[softplus(-D(G(z)))]."""
    return F.softplus(-f).mean()


def hinge_d_real(r: Tensor) -> Tensor:
    """D on reals, hinge: E[max(0, 1 - D(x))]."""
    return F.relu(1.0 - r).mean()


def hinge_d_fake(f: Tensor) -> Tensor:
    """D on fakes, hinge: E[max(0, 1 + D(G(z)))]."""
    return F.relu(1.0 + f).mean()


def critic_g(f: Tensor) -> Tensor:
    """G for hinge and Wasserstein: -E[D(G(z))]."""
    return -f.mean()


def wasserstein_d_real(r: Tensor) -> Tensor:
    """Critic on reals, WGAN: -E[D(x)]."""
    return -r.mean()


def wasserstein_d_fake(f: Tensor) -> Tensor:
    """Critic on fakes, WGAN: E[D(G(z))]."""
    return f.mean()


def lsgan_d_real(r: Tensor) -> Tensor:
    """D on reals, least squares (Mao et al. 2017, b=1): 1/2 E[(D(x) - 1)^2]."""
    return 0.5 * (r - 1.0).pow(2).mean()


def lsgan_d_fake(f: Tensor) -> Tensor:
    """D on fakes, least squares (a=0): 1/2 E[D(G(z))^2]."""
    return 0.5 * f.pow(2).mean()


def lsgan_g(f: Tensor) -> Tensor:
    """G, least squares (c=1): 1/2 E[(D(G(z)) - 1)^2]."""
    return 0.5 * (f - 1.0).pow(2).mean()


# Named in ganscale/registry.py (LOSSES: "name" -> "ganscale.losses:ATTRIBUTE"), imported on lookup.
MINIMAX = GANLoss("minimax", bce_d_real, bce_d_fake, minimax_g)
NONSATURATING = GANLoss("nonsaturating", bce_d_real, bce_d_fake, nonsaturating_g)
HINGE = GANLoss("hinge", hinge_d_real, hinge_d_fake, critic_g)
WASSERSTEIN = GANLoss("wasserstein", wasserstein_d_real, wasserstein_d_fake, critic_g)
LEAST_SQUARES = GANLoss("least_squares", lsgan_d_real, lsgan_d_fake, lsgan_g)


def get_loss(name: str) -> GANLoss:
    return LOSSES[name]


__all__ = ["GANLoss", "LOSSES", "get_loss", "torch"]
