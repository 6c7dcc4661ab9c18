"""Data modules. `build_datamodule(cfg)` picks one by `data.kind`."""

from __future__ import annotations

from ganscale.data.base import DataInfo, GANDataModule
from ganscale.registry import Registry

DATASETS: Registry[type] = Registry("data kind")


@DATASETS.register("toy")
def _toy(cfg) -> GANDataModule:
    from ganscale.data.toy import ToyDataModule

    return ToyDataModule(cfg)


@DATASETS.register("shards")
def _shards(cfg) -> GANDataModule:
    from ganscale.data.shards.datamodule import ShardsDataModule

    return ShardsDataModule(cfg)


def build_datamodule(cfg) -> GANDataModule:
    return DATASETS[cfg.data.kind](cfg)


__all__ = ["DATASETS", "DataInfo", "GANDataModule", "build_datamodule"]
