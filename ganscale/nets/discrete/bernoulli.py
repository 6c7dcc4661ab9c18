"""A generator of binary images: any G family's output read as Bernoulli logits per pixel.

    G = BernoulliGenerator(base)         # base: G(z, y) -> logits of shape info.shape
    x = G(G.sample_z(n))                 # binary images in {-1, 1}: what `ganscale sample` writes

The latent carries the sampling noise: `sample_z` returns [z, u] with u ~ U(0, 1) per pixel, so a
seeded latent draw fixes the binary sample too (the engine's seeded draws keep N ranks equal to
one process and resumes bit-exact; `ganscale sample --seed` is reproducible).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from ganscale.nets.base import Generator
from ganscale.nets.discrete.estimators import logistic_from_uniform


class BernoulliGenerator(Generator):
    def __init__(self, base: Generator, out_shape: tuple[int, ...]):
        super().__init__()
        self.base = base
        self.out_shape = tuple(out_shape)
        self.noise_dim = math.prod(self.out_shape)
        self.latent_dim = base.z_dim
        self.z_dim = base.z_dim + self.noise_dim
        self.num_classes = base.num_classes

    def sample_z(self, n: int, generator: Optional[torch.Generator] = None, device=None,
                 truncation: Optional[float] = None) -> Tensor:
        z = self.base.sample_z(n, generator=generator, device=device, truncation=truncation)
        u = torch.rand(n, self.noise_dim, generator=generator, device=device)
        return torch.cat([z, u], 1)

    def split(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(latent, Logistic noise shaped like an image) of a latent from `sample_z`."""
        latent, u = z[:, :self.latent_dim], z[:, self.latent_dim:]
        return latent, logistic_from_uniform(u).view(z.shape[0], *self.out_shape)

    def logits(self, latent: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """Per-pixel Bernoulli logits for the latent part of z."""
        return self.base(latent, y)

    def forward(self, z: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """Binary images in {-1, 1} (the [-1, 1] convention of every image in ganscale)."""
        latent, noise = self.split(z)
        return torch.where(self.logits(latent, y) + noise > 0, 1.0, -1.0)
