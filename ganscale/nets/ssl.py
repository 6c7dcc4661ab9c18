"""The MNIST networks of the semi-supervised GAN (Salimans et al. 2016, openai/improved-gan
train_mnist_feature_matching.py), used by game.name=ssl_gan.

G: z ~ U(0, 1)^100 -> 500 -> 500 (BatchNorm, softplus) -> 784 (weight norm, sigmoid), returned in
   the data's [-1, 1] range as [N, 1, 28, 28].
D: pixels in [0, 1] + N(0, 0.3^2) -> 1000 -> 500 -> 250 -> 250 -> 250 (weight-normed dense, ReLU,
   + N(0, 0.5^2) after each) -> K class logits (weight norm). The fake class has logit 0.

D's noise is an argument, not drawn inside: the game draws it with the engine's seeded global
draws (one [N, D.noise_dim] standard normal tensor per call), so N ranks equal one process and a
resume is bit-exact. Without it (evaluation, `ganscale predict`) D is deterministic.
D's scales and biases are initialised from a batch of training images (`init_from_data`, the
reference's data-dependent init). Difference from the reference: weight norm via torch
parametrizations with every scale g trainable (the reference trains the last layer's only).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ganscale.nets.base import Generator


def wn_linear(n_in: int, n_out: int) -> nn.Linear:
    """A weight-normed dense layer, w = g v / |v| per output unit: v ~ N(0, 0.05^2) as the
    reference's, g = 1 (unit-norm rows), bias 0. The scale of v matters although w does not
    depend on it: Adam's steps on v are of a fixed size, so |v| sets how fast w's direction turns."""
    linear = nn.Linear(n_in, n_out)
    with torch.no_grad():
        linear.weight.normal_(0.0, 0.05)
        linear.bias.zero_()
    layer = weight_norm(linear, dim=0)
    with torch.no_grad():
        layer.parametrizations.weight.original0.fill_(1.0)
    return layer


class SSLGenerator(Generator):
    def __init__(self, z_dim: int, width: int, shape: Sequence[int], batchnorm: bool = True):
        super().__init__()
        self.z_dim, self.shape = z_dim, tuple(shape)
        norm = (lambda: nn.BatchNorm1d(width)) if batchnorm else nn.Identity
        self.body = nn.Sequential(nn.Linear(z_dim, width, bias=not batchnorm), norm(), nn.Softplus(),
                                  nn.Linear(width, width, bias=not batchnorm), norm(), nn.Softplus())
        self.out = wn_linear(width, math.prod(self.shape))

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
    features [N, widths[-1]]), the features being the last hidden layer after its noise (the
    reference's feature-matching layer, layers[-2])."""

    def __init__(self, shape: Sequence[int], widths: Sequence[int], num_classes: int,
                 input_noise: float, hidden_noise: float):
        super().__init__()
        dims = [math.prod(shape), *widths]
        self.hidden = nn.ModuleList(wn_linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = wn_linear(dims[-1], num_classes)
        self.dims, self.num_classes = dims, num_classes
        self.stds = [input_noise] + [hidden_noise] * len(widths)

    @property
    def noise_dim(self) -> int:
        """Columns of the noise tensor one call takes (input and every hidden layer)."""
        return sum(self.dims)

    @torch.no_grad()
    def init_from_data(self, x: Tensor) -> None:
        """The reference's data-dependent initialisation: layer by layer, the scale g and the bias
        are set so that the pre-activations on x (noise-free) have zero mean and unit variance."""
        h = (x.flatten(1) + 1) / 2
        for layer in [*self.hidden, self.out]:
            t = layer(h)
            mean, inv_std = t.mean(0), 1.0 / (t.var(0, unbiased=False) + 1e-8).sqrt()
            layer.parametrizations.weight.original0.mul_(inv_std.unsqueeze(1))
            layer.bias.copy_((layer.bias - mean) * inv_std)
            h = F.relu(layer(h))

    def forward(self, x: Tensor, noise: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        h = (x.flatten(1) + 1) / 2  # the reference's pixels in [0, 1]
        parts = noise.split(self.dims, dim=1) if noise is not None else [None] * len(self.dims)
        for i, (layer, eps) in enumerate(zip([*self.hidden, None], parts)):
            if eps is not None and self.stds[i] > 0:
                h = h + self.stds[i] * eps
            if layer is not None:
                h = F.relu(layer(h))
        return self.out(h), h
