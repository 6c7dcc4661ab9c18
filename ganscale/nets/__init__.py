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


# image families (one file each); registered here so nets/__init__ stays the single registry
from ganscale.nets.biggan import build_biggan  # noqa: E402
from ganscale.nets.dcgan import build_dcgan  # noqa: E402
from ganscale.nets.sngan import build_sngan  # noqa: E402

ARCHS.register("dcgan")(build_dcgan)
ARCHS.register("sngan")(build_sngan)
ARCHS.register("biggan")(build_biggan)

from ganscale.nets.text2img import build_dfgan, build_stackgan, build_stackganpp  # noqa: E402

ARCHS.register("stackgan")(build_stackgan)
ARCHS.register("stackganpp")(build_stackganpp)
ARCHS.register("dfgan")(build_dfgan)


def build_nets(cfg: ModelConfig, info) -> tuple[Generator, Discriminator]:
    return ARCHS[cfg.arch](cfg, info)


__all__ = ["ARCHS", "build_nets", "Generator", "Discriminator"]
