"""Typed config of the data component (`data.*`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ganscale.data.shards.config import ShardsConfig

if TYPE_CHECKING:
    from ganscale.config.schema import RunConfig


@dataclass
class ToyConfig:
    """2D Gaussian mixtures of the PacGAN/VEEGAN protocol, streamed without end."""

    mixture: str = "ring"
    """`ring` (modes on a circle) or `grid` (modes on a square lattice)."""
    num_modes: int = 8
    """ring: number of modes on the circle."""
    radius: float = 1.0
    """ring: radius of the circle."""
    grid_size: int = 5
    """grid: modes per side (grid_size**2 modes)."""
    spacing: float = 2.0
    """grid: distance between neighbouring means; the grid is centred on 0."""
    std: float = 0.01
    """Standard deviation of every mode (ring 0.01, grid 0.05 in the protocol)."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.mixture not in ("ring", "grid"):
            out.append(f"mixture={self.mixture!r} is not a known mixture; choose one of: grid, ring")
        if self.num_modes < 1:
            out.append(f"num_modes={self.num_modes} must be >= 1")
        if self.grid_size < 1:
            out.append(f"grid_size={self.grid_size} must be >= 1")
        if self.std <= 0:
            out.append(f"std={self.std} must be > 0")
        return out


@dataclass
class DigitsConfig:
    """MNIST-style IDX digits held in memory (data.kind=digits), with an optional labelled stream
    for semi-supervised games: a seed picks `labelled_per_class` images of every class from the
    train split, and every batch carries `x_lab`/`y_lab` from them beside the unlabelled `x`."""

    path: str = "../shared/data/mnist"
    """Folder with the four gzip IDX files (train-/t10k- images and labels)."""
    labels: bool = False
    """Put the unlabelled stream's labels into batches as `y` (class-conditional games only)."""
    labelled_per_class: int = 0
    """Labelled images per class for the labelled stream; 0 = no labelled stream."""
    labelled_seed: int = 1
    """Seed of the choice of labelled images (independent of the run's seed)."""
    labelled_batch_size: int = 0
    """Per-rank batch of the labelled stream; 0 = data.batch_size."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.labelled_per_class < 0 or self.labelled_batch_size < 0:
            out.append("labelled_per_class and labelled_batch_size must be >= 0")
        return out


@dataclass
class DataConfig:
    kind: str = "toy"
    """Which data module: `toy` (2D mixtures), `shards` (WebDataset tar shards, see data.shards) or
    `digits` (MNIST-style IDX files in memory with a labelled stream, see data.digits),
    `none` (games that draw their own inputs, e.g. game.name=crypto)."""
    batch_size: int = 256
    """Per-rank batch size of one D (or G) step. Global batch = batch_size x world size."""
    num_workers: int = 0
    """DataLoader worker processes per rank."""
    toy: ToyConfig = field(default_factory=ToyConfig)
    """Settings of the toy mixtures (used when kind=toy)."""
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    """Shard spec, manifest, shuffling, decoding and transforms (used when kind=shards)."""
    digits: DigitsConfig = field(default_factory=DigitsConfig)
    """In-memory IDX digits and their labelled stream (used when kind=digits)."""

    def check(self, root: "RunConfig") -> list[str]:
        from ganscale.registry import DATASETS

        out = []
        p = DATASETS.problem("kind", self.kind)
        if p:
            out.append(p)
        if self.batch_size < 1:
            out.append(f"batch_size={self.batch_size} must be >= 1")
        if self.num_workers < 0:
            out.append(f"num_workers={self.num_workers} must be >= 0")
        return out
