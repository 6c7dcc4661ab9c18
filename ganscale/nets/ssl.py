"""The MNIST networks of the semi-supervised GAN (Salimans et al. 2016, openai/improved-gan
train_mnist_feature_matching.py and its nn.py), used by game.name=ssl_gan.

    ganscale train configs/mnist/ssl_gan.yaml

G: z ~ U(0, 1)^100 -> 500 -> 500 (BatchNorm with a shift and no scale, softplus) -> 784 (weight norm, sigmoid), returned in
   the data's [-1, 1] range as [N, 1, 28, 28]. Glorot-uniform weights (Lasagne's default).
D: pixels in [0, 1] + N(0, 0.3^2) -> 1000 -> 500 -> 250 -> 250 -> 250 (weight-normed dense, ReLU,
   + N(0, 0.5^2) after each) -> K class logits (weight norm). The fake class has logit 0.
   The feature-matching layer is the last hidden ReLU output *before* its noise (the reference's
   layers[-3]).

Weight norm is a torch parametrization, w = g v / |v| per output unit (`RowScale`). As in the
reference's nn.DenseLayer, D's hidden layers keep their scale g fixed (a buffer, set once by the
data-dependent init): only the output layer's g trains. D's directions v start as N(0, 0.1^2).

D's noise is an argument, not drawn inside: the game draws it with the engine's seeded global
draws (one [N, D.noise_dim] standard normal tensor per call), so N ranks equal one process and a
resume is bit-exact. Without it (evaluation, `ganscale predict`) D is deterministic.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ganscale.nets.base import Generator


class RowScale(nn.Module):
    """Weight-norm parametrization w = g v / |v| (one g per output row). g is a parameter when
    `trainable`, else a buffer: the engine switches requires_grad per player on every parameter,
    so a fixed scale must not be one."""

    def __init__(self, n_out: int, trainable: bool):
        super().__init__()
        if trainable:
            self.g = nn.Parameter(torch.ones(n_out))
        else:
            self.register_buffer("g", torch.ones(n_out))

    def forward(self, v: Tensor) -> Tensor:
        return v * (self.g / v.norm(dim=1)).unsqueeze(1)


def wn_linear(n_in: int, n_out: int, train_scale: bool, std: Optional[float] = None) -> nn.Linear:
    """A weight-normed dense layer with g = 1 and bias 0. v ~ N(0, std^2) (the reference's D:
    0.1), or Glorot-uniform when std is None (Lasagne's DenseLayer, the reference's G). The
    scale of v matters although w does not depend on it: Adam's steps on v are of a fixed size,
    so |v| sets how fast w's direction turns."""
    linear = nn.Linear(n_in, n_out)
    with torch.no_grad():
        if std is None:
            nn.init.xavier_uniform_(linear.weight)
        else:
            linear.weight.normal_(0.0, std)
        linear.bias.zero_()
    parametrize.register_parametrization(linear, "weight", RowScale(n_out, train_scale))
    return linear


def scale_of(layer: nn.Linear) -> Tensor:
    """The weight-norm scale g of a `wn_linear` layer (a parameter or a buffer)."""
    return layer.parametrizations.weight[0].g


class BatchNormShift(nn.BatchNorm1d):
    """BatchNorm with a learned shift and no scale (the reference's nn.batch_norm(..., g=None)):
    the scale would only duplicate the next layer's weights."""

    def __init__(self, width: int):
        super().__init__(width, eps=1e-6, affine=False)
        self.shift = nn.Parameter(torch.zeros(width))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) + self.shift


class SSLGenerator(Generator):
    def __init__(self, z_dim: int, width: int, shape: Sequence[int], batchnorm: bool = True):
        super().__init__()
        self.z_dim, self.shape = z_dim, tuple(shape)
        norm = (lambda: BatchNormShift(width)) if batchnorm else nn.Identity
        self.body = nn.Sequential(nn.Linear(z_dim, width, bias=not batchnorm), norm(), nn.Softplus(),
                                  nn.Linear(width, width, bias=not batchnorm), norm(), nn.Softplus())
        for layer in self.body:
            if isinstance(layer, nn.Linear):  # Lasagne's default (BatchNorm makes only Adam's step size depend on it)
                nn.init.xavier_uniform_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
        self.out = wn_linear(width, math.prod(self.shape), train_scale=True)

    def sample_z(self, n: int, generator: Optional[torch.Generator] = None, device=None,
                 truncation: Optional[float] = None) -> Tensor:
        """U(0, 1) noise, the reference's; truncation is not defined for it."""
        if truncation is not None:
            raise ValueError("the SSL GAN's uniform noise has no truncation")
        return torch.rand(n, self.z_dim, generator=generator, device=device)

    def forward(self, z: Tensor, y=None) -> Tensor:
        x = torch.sigmoid(self.out(self.body(z)))  # pixels in [0, 1]
        return (x * 2 - 1).view(len(z), *self.shape)


class SSLDiscriminator(nn.Module):
    """A K-class classifier whose fake logit is fixed at 0: D(x, noise) -> (logits [N, K],
    features [N, widths[-1]]), the features being the last hidden layer's ReLU output before its
    noise (the reference's feature-matching layer, layers[-3])."""

    def __init__(self, shape: Sequence[int], widths: Sequence[int], num_classes: int,
                 input_noise: float, hidden_noise: float, init_std: float = 0.1):
        super().__init__()
        dims = [math.prod(shape), *widths]
        self.hidden = nn.ModuleList(wn_linear(a, b, train_scale=False, std=init_std)
                                    for a, b in zip(dims[:-1], dims[1:]))
        self.out = wn_linear(dims[-1], num_classes, train_scale=True, std=init_std)
        self.dims, self.num_classes = dims, num_classes
        self.stds = [input_noise] + [hidden_noise] * len(widths)

    @property
    def noise_dim(self) -> int:
        """Columns of the noise tensor one call takes (input and every hidden layer)."""
        return sum(self.dims)

    def _noisy(self, h: Tensor, i: int, parts) -> Tensor:
        """h plus the i-th layer's share of the noise (none without noise)."""
        eps = parts[i]
        return h if eps is None or self.stds[i] == 0 else h + self.stds[i] * eps

    def _parts(self, noise: Optional[Tensor]) -> list:
        return list(noise.split(self.dims, dim=1)) if noise is not None else [None] * len(self.dims)

    @torch.no_grad()
    def init_from_data(self, x: Tensor, noise: Optional[Tensor] = None) -> None:
        """The reference's data-dependent initialisation: layer by layer, the scale g and the bias
        are set so that the pre-activations on x have zero mean and unit variance. The reference
        runs it with D's noise on (deterministic=False): pass `noise` to do the same."""
        parts = self._parts(noise)
        h = (x.flatten(1) + 1) / 2
        for i, layer in enumerate([*self.hidden, self.out]):
            h = self._noisy(h, i, parts)
            t = layer(h)
            mean, inv_std = t.mean(0), 1.0 / (t.var(0, unbiased=False) + 1e-8).sqrt()
            scale_of(layer).mul_(inv_std)
            layer.bias.copy_((layer.bias - mean) * inv_std)
            h = F.relu(layer(h))

    def forward(self, x: Tensor, noise: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        parts = self._parts(noise)
        h = (x.flatten(1) + 1) / 2  # the reference's pixels in [0, 1]
        for i, layer in enumerate(self.hidden):
            h = F.relu(layer(self._noisy(h, i, parts)))
        return self.out(self._noisy(h, len(self.hidden), parts)), h
