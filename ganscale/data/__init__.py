"""Data modules. `build_datamodule(cfg)` picks one by `data.kind`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ganscale.registry import Registry

if TYPE_CHECKING:
    from ganscale.data.base import DataInfo, GANDataModule


def __getattr__(name: str):
    # Lazy: importing ganscale.data.<submodule> (config, packing, a spawned DataLoader worker
    # unpickling the shard stream) must not pay for importing Lightning.
    if name in ("DataInfo", "GANDataModule"):
        from ganscale.data import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DATASETS: Registry[type] = Registry("data kind")


@DATASETS.register("toy")
def _toy(cfg) -> GANDataModule:
    from ganscale.data.toy import ToyDataModule

    return ToyDataModule(cfg)


@DATASETS.register("shards")
def _shards(cfg) -> GANDataModule:
    from ganscale.data.shards.datamodule import ShardsDataModule

    return ShardsDataModule(cfg)


@DATASETS.register("none")
def _none(cfg) -> GANDataModule:
    from ganscale.data.none import NoDataModule

    return NoDataModule(cfg)


def build_datamodule(cfg) -> GANDataModule:
    return DATASETS[cfg.data.kind](cfg)


__all__ = ["DATASETS", "DataInfo", "GANDataModule", "build_datamodule"]
