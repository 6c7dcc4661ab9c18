"""Network families. `build_nets(model_cfg, info) -> (G, D)`; each family is one file with a
`build_<family>(model_cfg, info)` function, named in ganscale/registry.py (ARCHS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ganscale.registry import ARCHS

if TYPE_CHECKING:
    from ganscale.nets.base import Discriminator, Generator
    from ganscale.nets.config import ModelConfig


def __getattr__(name: str):
    # Lazy: importing ganscale.nets.config (to load a config) must not import torch.
    if name in ("Discriminator", "Generator"):
        from ganscale.nets import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_nets(cfg: ModelConfig, info) -> tuple[Generator, Discriminator]:
    return ARCHS[cfg.arch](cfg, info)


__all__ = ["ARCHS", "build_nets", "Generator", "Discriminator"]
