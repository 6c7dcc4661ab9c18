"""BiGAN / ALI networks: generator G(z), encoder E(x) and the joint discriminator D(x, z).

The permutation-invariant MNIST nets of the BiGAN authors (Donahue et al. 2017,
jeffdonahue/bigan `train_mnist.sh`: `mnist_mlp` and `deconvnet_mnist_mlp` in net.py): every net
is an MLP with `depth` hidden layers of `width` units; G uses ReLU and E and D leaky ReLU (0.2).
z is 50-dimensional uniform on [-1, 1] (BiGAN) or standard normal (game.bigan.prior).
`game.bigan.nets` picks how z meets the hidden layers:

- `authors`: z enters D as a learned bias of its second (and every later) hidden layer,
  W h + V z, before BatchNorm, and enters G again the same way (the authors' `apply_cond`); D's
  and E's first layers have no BatchNorm; BatchNorm has no learned scale or shift (their
  `--nogain --nobias`).
- `concat` (the default): x and z concatenated at D's input, plain MLPs, BatchNorm with scale and
  shift (D's first layer excepted). At the CPU budget of docs/bigan.md it gave the better codes
  (1-NN 94.3% against 93.7% after 1500 iterations).

E is deterministic for BiGAN. For ALI (Dumoulin et al. 2017) it outputs a mean and a log-variance
and z = mu + sigma * eps is reparameterised; eps comes from the engine's seeded draws, so E's
sampling is passed in (`E.sample(x, eps)`), never drawn inside the net.

With the uniform prior E's code is squashed into the prior's support, z = 2 sigmoid(h) - 1, as the
authors' `UniformDistribution.logits_to_sample` does. Unbounded, a code outside [-1, 1] marks a
real pair, as no fake pair's z leaves the box; so trained, D won and the codes got worse after the
first epoch (docs/bigan/history.md). `E.features(x)` is h before the squash, which the latent
metrics read (the authors' `l2distable`).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from ganscale.nets.base import Generator


def mlp(in_dim: int, width: int, depth: int, act: type[nn.Module], norm: bool, out_dim: int,
        norm_first: bool = True, affine: bool = True) -> nn.Sequential:
    """Linear -> BatchNorm -> activation, `depth` times, then a linear head. `norm_first=False`
    leaves the first hidden layer without BatchNorm (D's input layer, as in DCGAN); `affine=False`
    gives BatchNorm no learned scale and shift."""
    layers: list[nn.Module] = []
    d = in_dim
    for i in range(depth):
        layers.append(nn.Linear(d, width))
        if norm and (i > 0 or norm_first):
            layers.append(nn.BatchNorm1d(width, affine=affine))
        layers.append(act())
        d = width
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def leaky_relu() -> nn.Module:
    return nn.LeakyReLU(0.2)



class ZBiasMLP(nn.Module):
    """h -> [Linear (+ a bias V_i z from the second hidden layer on) -> BatchNorm -> act] x depth
    -> Linear: the authors' `mnist_mlp` / `deconvnet_mnist_mlp` with z as their `cond`."""

    def __init__(self, in_dim: int, z_dim: int, width: int, depth: int, act: type[nn.Module], norm: bool,
                 out_dim: int, norm_first: bool):
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(in_dim if i == 0 else width, width) for i in range(depth))
        self.z_bias = nn.ModuleList(nn.Linear(z_dim, width, bias=False) for _ in range(depth - 1))
        self.norms = nn.ModuleList(nn.BatchNorm1d(width, affine=False) if norm and (i > 0 or norm_first)
                                   else nn.Identity() for i in range(depth))
        self.act = act()
        self.head = nn.Linear(width, out_dim)

    def forward(self, h: Tensor, z: Tensor) -> Tensor:
        for i, (linear, norm) in enumerate(zip(self.hidden, self.norms)):
            h = linear(h)
            if i > 0:
                h = h + self.z_bias[i - 1](z)
            h = self.act(norm(h))
        return self.head(h)


class BiGANGenerator(Generator):
    """z -> x in [-1, 1] (tanh; the authors' sigmoid on [0, 1], rescaled like the data)."""

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], width: int, depth: int, norm: bool, prior: str,
                 nets: str = "concat"):
        super().__init__()
        self.z_dim, self.out_shape, self.prior = z_dim, tuple(out_shape), prior
        out = math.prod(self.out_shape)
        self.z_bias = nets == "authors"
        self.net = (ZBiasMLP(z_dim, z_dim, width, depth, nn.ReLU, norm, out, norm_first=True) if self.z_bias
                    else mlp(z_dim, width, depth, nn.ReLU, norm, out))

    def sample_z(self, n: int, generator: Optional[torch.Generator] = None, device=None,
                 truncation: Optional[float] = None) -> Tensor:
        if self.prior == "normal":
            return super().sample_z(n, generator=generator, device=device, truncation=truncation)
        z = torch.rand(n, self.z_dim, generator=generator, device=device) * 2 - 1
        return z if truncation is None else z.clamp(-truncation, truncation)

    def forward(self, z: Tensor, y: Optional[Tensor] = None) -> Tensor:
        h = self.net(z, z) if self.z_bias else self.net(z)
        return torch.tanh(h).view(z.shape[0], *self.out_shape)


class Encoder(nn.Module):
    """x -> z. Deterministic (BiGAN): E(x) = squash(net(x)). Gaussian (ALI): net(x) = (mu, log_var)
    and `sample(x, eps)` = squash(mu + exp(log_var / 2) * eps); `forward` gives squash(mu) (the code
    `ganscale encode` writes). squash is 2 sigmoid - 1 for a uniform prior (`bounded`), else the
    identity."""

    def __init__(self, in_shape: tuple[int, ...], z_dim: int, width: int, depth: int, norm: bool, stochastic: bool,
                 nets: str = "concat", bounded: bool = False):
        super().__init__()
        self.z_dim, self.stochastic, self.bounded = z_dim, stochastic, bounded
        self.net = mlp(math.prod(in_shape), width, depth, leaky_relu, norm, z_dim * (2 if stochastic else 1),
                       norm_first=nets != "authors", affine=nets != "authors")

    def moments(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        h = self.net(x.reshape(x.shape[0], -1))
        return h.chunk(2, dim=1) if self.stochastic else (h, None)

    def squash(self, h: Tensor) -> Tensor:
        return torch.tanh(0.5 * h) if self.bounded else h  # tanh(h / 2) = 2 sigmoid(h) - 1

    def features(self, x: Tensor) -> Tensor:
        """The code before the squash (the mean for ALI): what the latent metrics compare."""
        return self.moments(x)[0]

    def forward(self, x: Tensor) -> Tensor:
        return self.squash(self.moments(x)[0])

    def sample(self, x: Tensor, eps: Optional[Tensor]) -> Tensor:
        mu, log_var = self.moments(x)
        if log_var is None:
            return self.squash(mu)
        return self.squash(mu + torch.exp(0.5 * log_var) * eps)


class JointDiscriminator(nn.Module):
    """D(x, z) -> logits [N]: x (flattened) and z concatenated into one MLP."""

    def __init__(self, in_shape: tuple[int, ...], z_dim: int, width: int, depth: int, norm: bool,
                 nets: str = "concat"):
        super().__init__()
        x_dim = math.prod(in_shape)
        self.z_bias = nets == "authors" and depth > 1  # one hidden layer: no second layer for z, so concat
        self.net = (ZBiasMLP(x_dim, z_dim, width, depth, leaky_relu, norm, 1, norm_first=False) if self.z_bias
                    else mlp(x_dim + z_dim, width, depth, leaky_relu, norm, 1, norm_first=False))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], -1)
        return (self.net(x, z) if self.z_bias else self.net(torch.cat([x, z], dim=1))).squeeze(1)
