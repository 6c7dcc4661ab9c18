"""Network families. `build_nets(model_cfg, info) -> (G, D)`; each family registers a builder."""

from __future__ import annotations

from typing import Callable

from ganscale.nets.base import Discriminator, Generator
from ganscale.nets.config import ModelConfig
from ganscale.nets.mlp import MLPDiscriminator, MLPGenerator
from ganscale.registry import Registry

Builder = Callable[[ModelConfig, "DataInfo"], tuple[Generator, Discriminator]]  # noqa: F821
ARCHS: Registry[Builder] = Registry("network architecture")


@ARCHS.register("mlp")
def build_mlp(cfg: ModelConfig, info) -> tuple[Generator, Discriminator]:
    return MLPGenerator(cfg.z_dim, info.shape, cfg.mlp.G), MLPDiscriminator(info.shape, cfg.mlp.D, cfg.remedies)


def build_nets(cfg: ModelConfig, info) -> tuple[Generator, Discriminator]:
    return ARCHS[cfg.arch](cfg, info)


__all__ = ["ARCHS", "build_nets", "Generator", "Discriminator"]
