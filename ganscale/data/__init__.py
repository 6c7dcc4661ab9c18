"""Data modules. `build_datamodule(cfg)` picks one by `data.kind` (ganscale.registry.DATASETS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ganscale.registry import DATASETS

if TYPE_CHECKING:
    from ganscale.data.base import DataInfo, GANDataModule


def __getattr__(name: str):
    # Lazy: importing ganscale.data.<submodule> (config, packing, a spawned DataLoader worker
    # unpickling the shard stream) must not pay for importing Lightning.
    if name in ("DataInfo", "GANDataModule"):
        from ganscale.data import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_datamodule(cfg) -> GANDataModule:
    """The data module class named by data.kind (ganscale.registry.DATASETS), given the RunConfig."""
    return DATASETS[cfg.data.kind](cfg)


__all__ = ["DATASETS", "DataInfo", "GANDataModule", "build_datamodule"]
