"""BiGAN / ALI networks: generator G(z), encoder E(x) and the joint discriminator D(x, z).

The permutation-invariant MNIST nets of the BiGAN authors (Donahue et al. 2017,
jeffdonahue/bigan `train_mnist.sh`): every net is an MLP with `depth` hidden layers of `width`
units and BatchNorm (optional); G uses ReLU and E and D leaky ReLU (0.2). D sees x and z concatenated at its
input. z is 50-dimensional uniform on [-1, 1] (BiGAN) or standard normal (game.bigan.prior).

E is deterministic for BiGAN. For ALI (Dumoulin et al. 2017) it outputs a mean and a log-variance
and z = mu + sigma * eps is reparameterised; eps comes from the engine's seeded draws, so E's
sampling is passed in (`E.sample(x, eps)`), never drawn inside the net.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from ganscale.nets.base import Generator


def mlp(in_dim: int, width: int, depth: int, act: type[nn.Module], norm: bool, out_dim: int,
        norm_first: bool = True) -> nn.Sequential:
    """Linear -> BatchNorm -> activation, `depth` times, then a linear head. `norm_first=False`
    leaves the first hidden layer without BatchNorm (D's input layer, as in DCGAN)."""
    layers: list[nn.Module] = []
    d = in_dim
    for i in range(depth):
        layers.append(nn.Linear(d, width))
        if norm and (i > 0 or norm_first):
            layers.append(nn.BatchNorm1d(width))
        layers.append(act())
        d = width
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def leaky_relu() -> nn.Module:
    return nn.LeakyReLU(0.2)


class BiGANGenerator(Generator):
    """z -> x in [-1, 1] (tanh; the authors' sigmoid on [0, 1], rescaled like the data)."""

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], width: int, depth: int, norm: bool, prior: str):
        super().__init__()
        self.z_dim, self.out_shape, self.prior = z_dim, tuple(out_shape), prior
        self.net = mlp(z_dim, width, depth, nn.ReLU, norm, math.prod(self.out_shape))

    def sample_z(self, n: int, generator: Optional[torch.Generator] = None, device=None,
                 truncation: Optional[float] = None) -> Tensor:
        if self.prior == "normal":
            return super().sample_z(n, generator=generator, device=device, truncation=truncation)
        z = torch.rand(n, self.z_dim, generator=generator, device=device) * 2 - 1
        return z if truncation is None else z.clamp(-truncation, truncation)

    def forward(self, z: Tensor, y: Optional[Tensor] = None) -> Tensor:
        return torch.tanh(self.net(z)).view(z.shape[0], *self.out_shape)


class Encoder(nn.Module):
    """x -> z. Deterministic (BiGAN): E(x) = net(x). Gaussian (ALI): net(x) = (mu, log_var) and
    `sample(x, eps)` = mu + exp(log_var / 2) * eps; `forward` gives mu (the code `ganscale encode`
    writes)."""

    def __init__(self, in_shape: tuple[int, ...], z_dim: int, width: int, depth: int, norm: bool, stochastic: bool):
        super().__init__()
        self.z_dim, self.stochastic = z_dim, stochastic
        self.net = mlp(math.prod(in_shape), width, depth, leaky_relu, norm, z_dim * (2 if stochastic else 1))

    def moments(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        h = self.net(x.reshape(x.shape[0], -1))
        return h.chunk(2, dim=1) if self.stochastic else (h, None)

    def forward(self, x: Tensor) -> Tensor:
        return self.moments(x)[0]

    def sample(self, x: Tensor, eps: Optional[Tensor]) -> Tensor:
        mu, log_var = self.moments(x)
        if log_var is None:
            return mu
        return mu + torch.exp(0.5 * log_var) * eps


class JointDiscriminator(nn.Module):
    """D(x, z) -> logits [N]: x (flattened) and z concatenated into one MLP."""

    def __init__(self, in_shape: tuple[int, ...], z_dim: int, width: int, depth: int, norm: bool):
        super().__init__()
        self.net = mlp(math.prod(in_shape) + z_dim, width, depth, leaky_relu, norm, 1, norm_first=False)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return self.net(torch.cat([x.reshape(x.shape[0], -1), z], dim=1)).squeeze(1)
