"""Typed config of the networks (`model.*`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ganscale.nets.remedies import RemediesConfig

if TYPE_CHECKING:
    from ganscale.config.schema import RunConfig

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "elu", "silu", "gelu")
NORMS = ("none", "batch", "layer")


@dataclass
class MLPNetConfig:
    width: int = 128
    """Hidden units per layer."""
    depth: int = 3
    """Number of hidden layers."""
    activation: str = "relu"
    """One of relu, leaky_relu, tanh, elu, silu, gelu."""
    norm: str = "none"
    """Normalization after each hidden linear layer: none, batch or layer."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.activation not in ACTIVATIONS:
            out.append(f"activation={self.activation!r} unknown; choose one of: {', '.join(ACTIVATIONS)}")
        if self.norm not in NORMS:
            out.append(f"norm={self.norm!r} unknown; choose one of: {', '.join(NORMS)}")
        if self.width < 1 or self.depth < 1:
            out.append(f"width={self.width} and depth={self.depth} must both be >= 1")
        return out


@dataclass
class MLPConfig:
    G: MLPNetConfig = field(default_factory=MLPNetConfig)
    """Generator MLP."""
    D: MLPNetConfig = field(default_factory=MLPNetConfig)
    """Discriminator MLP."""


@dataclass
class ModelConfig:
    arch: str = "mlp"
    """Network family for G and D (see ganscale.nets.ARCHS)."""
    z_dim: int = 2
    """Latent dimension of G."""
    mlp: MLPConfig = field(default_factory=MLPConfig)
    """Settings of the MLP family (arch=mlp)."""
    remedies: RemediesConfig = field(default_factory=RemediesConfig)
    """Mode-collapse remedies: packing, minibatch discrimination / stddev layers in D, feature matching."""

    def check(self, root: "RunConfig") -> list[str]:
        from ganscale.nets import ARCHS

        out = []
        p = ARCHS.problem("arch", self.arch)
        if p:
            out.append(p)
        if self.z_dim < 1:
            out.append(f"z_dim={self.z_dim} must be >= 1")
        return out
