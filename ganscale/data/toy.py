"""2D Gaussian mixtures (ring and grid) of the PacGAN/VEEGAN protocol, streamed without end."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch.utils.data import DataLoader, IterableDataset

from ganscale.data.base import DataInfo, GANDataModule, IndexedBatches, stream_seed
from ganscale.data.config import ToyConfig


def mixture_means(cfg: ToyConfig) -> torch.Tensor:
    """[K, 2] means: `ring` puts num_modes on a circle of `radius`; `grid` a grid_size^2 lattice
    with `spacing`, centred on 0 (5 x 5 at spacing 2 gives {-4,-2,0,2,4}^2)."""
    if cfg.mixture == "ring":
        angles = torch.arange(cfg.num_modes, dtype=torch.float64) * (2 * math.pi / cfg.num_modes)
        means = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1) * cfg.radius
    else:
        ticks = (torch.arange(cfg.grid_size, dtype=torch.float64) - (cfg.grid_size - 1) / 2) * cfg.spacing
        gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
        means = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    return means.float()


def sample_mixture(means: torch.Tensor, std: float, n: int, generator: torch.Generator) -> torch.Tensor:
    idx = torch.randint(len(means), (n,), generator=generator)
    return means[idx] + std * torch.randn(n, 2, generator=generator)


class ToyStream(IndexedBatches, IterableDataset):
    """Yields already-batched dicts {"x": [batch, 2]}; batch i comes from its own seed, and worker
    w of W yields batches start+w, start+w+W, ... so the DataLoader's round robin returns them in
    order whatever the number of workers."""

    def __init__(self, means, std: float, batch: int, seed: int, rank: int, start: int = 0):
        self.means, self.std, self.batch = means, std, batch
        self.seed, self.rank, self.start = seed, rank, start

    def batch_at(self, index: int) -> dict:
        g = torch.Generator().manual_seed(stream_seed(self.seed, self.rank, index))
        return {"x": sample_mixture(self.means, self.std, self.batch, g)}


class ToyDataModule(GANDataModule):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.toy = cfg.data.toy
        self.means = mixture_means(self.toy)
        self.std = self.toy.std
        """Mode means [K, 2] and the std of every mode: what mode coverage is measured against."""
        self.info = DataInfo(kind="points", shape=(2,), num_classes=0)

    def stream(self, start: Optional[int] = None) -> ToyStream:
        b = self.cfg.data.batch_size * self.batches_per_iter
        return ToyStream(self.means, self.toy.std, b, self.cfg.seed, self.rank,
                         self.start_batch if start is None else start)

    def iteration_loader(self):
        nw = self.cfg.data.num_workers
        return DataLoader(self.stream(), batch_size=None, num_workers=nw, persistent_workers=nw > 0)
