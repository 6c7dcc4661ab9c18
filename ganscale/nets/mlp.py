"""MLP generator and discriminator for low-dimensional data (the 2D toy mixtures)."""

from __future__ import annotations

import math
from typing import Optional

from torch import Tensor, nn

from ganscale.nets.base import Discriminator, Generator
from ganscale.nets.config import MLPNetConfig
from ganscale.nets.remedies import RemediesConfig, build_batch_layers, pack_samples

_ACT = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


def mlp_trunk(in_dim: int, cfg: MLPNetConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(cfg.depth):
        layers += [nn.Linear(d, cfg.width), _norm(cfg.norm, cfg.width), _ACT[cfg.activation]()]
        d = cfg.width
    return nn.Sequential(*layers)


class MLPGenerator(Generator):
    def __init__(self, z_dim: int, out_shape: tuple[int, ...], cfg: MLPNetConfig):
        super().__init__()
        self.z_dim = z_dim
        self.out_shape = tuple(out_shape)
        self.trunk = mlp_trunk(z_dim, cfg)
        self.head = nn.Linear(cfg.width, math.prod(self.out_shape))

    def forward(self, z: Tensor, y: Optional[Tensor] = None) -> Tensor:
        return self.head(self.trunk(z)).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(Discriminator):
    """trunk -> batch-level remedy layers (if any) -> linear head. With packing m, D maps N inputs
    to N/m logits; the features returned are the trunk's output (before the batch layers)."""

    def __init__(self, in_shape: tuple[int, ...], cfg: MLPNetConfig, remedies: Optional[RemediesConfig] = None):
        super().__init__()
        self.in_dim = math.prod(in_shape)
        self.pack = remedies.pack if remedies is not None else 1
        self.trunk = mlp_trunk(self.in_dim * self.pack, cfg)
        self.batch_layers, width = build_batch_layers(remedies, cfg.width)
        self.head = nn.Linear(width, 1)

    def forward(self, x: Tensor, y: Optional[Tensor] = None, return_features: bool = False):
        h = self.trunk(pack_samples(x.reshape(x.shape[0], -1), self.pack))
        out = self.head(self.batch_layers(h)).squeeze(1)
        return (out, h) if return_features else out


def build_mlp(cfg, info) -> tuple[Generator, Discriminator]:
    """G and D of `model.arch=mlp` (ganscale.registry.ARCHS)."""
    return MLPGenerator(cfg.z_dim, info.shape, cfg.mlp.G), MLPDiscriminator(info.shape, cfg.mlp.D, cfg.remedies)
