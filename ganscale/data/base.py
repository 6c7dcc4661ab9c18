"""What every data module gives the trainer: `info`, a train dataloader, its stream position.

Image data also yields real images in a fixed order (`real_images`, `reference_batches`) for
whoever measures G against them (ganscale.metrics); data modules know nothing of metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import lightning as L

from ganscale.utils import ranks

if TYPE_CHECKING:
    from ganscale.config.schema import RunConfig


@dataclass(frozen=True)
class DataInfo:
    kind: str
    """`points` (vectors, e.g. the 2D toys), `image` (C x H x W in [-1, 1]), `tokens` (int64
    sequences of `shape` (length,), ids in [0, vocab)) or `none` (no data: the game draws its
    inputs)."""
    shape: tuple[int, ...]
    """Shape of one sample."""
    num_classes: int = 0
    """Number of classes for conditional models; 0 = unconditional."""
    vocab: int = 0
    """Token ids per position of `tokens` data (0 for other kinds)."""

    def as_dict(self) -> dict:
        """Plain types, for checkpoints and exported config.json (`from_dict` reads it back); `vocab`
        only for token data, so other runs' files keep the keys they always had."""
        d = {"kind": self.kind, "shape": list(self.shape), "num_classes": self.num_classes}
        return {**d, "vocab": self.vocab} if self.vocab else d

    @classmethod
    def from_dict(cls, d: dict) -> "DataInfo":
        """The info `as_dict` wrote (`vocab` is absent from older checkpoints: 0)."""
        return cls(str(d["kind"]), tuple(int(s) for s in d["shape"]), int(d["num_classes"]), int(d.get("vocab", 0)))


def stream_seed(seed: int, rank: int, index: int) -> int:
    """A 63-bit seed for batch `index` of rank `rank`: every (seed, rank, index) its own stream,
    so any batch can be regenerated without replaying the ones before it (exact resume)."""
    h = (seed * 1_000_003 + rank) * 2_147_483_647 + index
    return (h * 6364136223846793005 + 1442695040888963407) % (2**63)


class IndexedBatches(ABC):
    """Mixin for an IterableDataset of already-batched dicts where batch i depends on i alone
    (`batch_at(i)`): worker w of W yields batches start+w, start+w+W, ... so the DataLoader's round
    robin returns them in order whatever the number of workers, and a resume starts at `start`."""

    start: int = 0

    @abstractmethod
    def batch_at(self, index: int) -> dict:
        """Batch `index` of the stream, a function of the index alone."""

    def __iter__(self):
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        i = self.start + wid
        while True:
            yield self.batch_at(i)
            i += nw


class IterationGroups:
    """The batches of `loader` (one per ganscale iteration) in groups, as {"iterations": [batch, ...]},
    for `trainer.iters_per_step` > 1. A group ends once `ends(done)` says so, `done` counting the
    iterations from the run's start: a resumed run (start > 0) gets its groups cut where an
    uninterrupted one cuts them."""

    KEY = "iterations"

    def __init__(self, loader, start: int, ends: Callable[[int], bool]):
        self.loader, self.start, self.ends = loader, start, ends

    def __iter__(self):
        group, done = [], self.start
        for batch in self.loader:
            group.append(batch)
            done += 1
            if self.ends(done):
                yield {self.KEY: group}
                group = []
        if group:
            yield {self.KEY: group}


def iteration_group(batch) -> Optional[list]:
    """The per-iteration batches of a training-step batch made by IterationGroups; None for the
    batch of a single iteration."""
    if isinstance(batch, dict) and IterationGroups.KEY in batch:
        return batch[IterationGroups.KEY]
    return None


def _per_iteration(batch, fn: Callable[[dict], dict]):
    """`fn` applied to a step's batch: to each iteration's batch of a group, in order."""
    group = iteration_group(batch)
    return fn(batch) if group is None else {IterationGroups.KEY: [fn(b) for b in group]}


class GANDataModule(L.LightningDataModule, ABC):
    """One `iteration_loader` batch = one ganscale iteration: `x` holds n_disc per-rank batches.
    `train_dataloader` groups them `trainer.iters_per_step` at a time (IterationGroups)."""

    info: DataInfo

    def __init__(self, cfg: "RunConfig"):
        super().__init__()
        self.cfg = cfg
        self.batches_per_iter = cfg.gan.n_disc
        self.start_batch = 0  # stream position restored from a checkpoint

    @property
    def rank(self) -> int:
        return ranks.rank(self.trainer)

    @property
    def world_size(self) -> int:
        return ranks.world_size(self.trainer)

    def _consumed(self) -> int:
        module = self.trainer.lightning_module if self.trainer is not None else None
        return int(getattr(module, "iteration", 0))

    @abstractmethod
    def iteration_loader(self):
        """The train loader: one batch per ganscale iteration, from the restored stream position."""

    def train_dataloader(self):
        loader = self.iteration_loader()
        if self.cfg.trainer.iters_per_step == 1:
            return loader
        module = self.trainer.lightning_module if self.trainer is not None else None
        return IterationGroups(loader, int(getattr(module, "iteration", self.start_batch)), self.cfg.trainer.step_ends)

    # Lightning's transfer hooks see a step's batch (a group under iters_per_step > 1); data modules
    # override the per-iteration versions below, which see each iteration's batch in order
    def on_before_batch_transfer(self, batch, dataloader_idx: int = 0):
        return _per_iteration(batch, self.before_transfer)

    def on_after_batch_transfer(self, batch, dataloader_idx: int = 0):
        return _per_iteration(batch, self.after_transfer)

    def before_transfer(self, batch: dict) -> dict:
        """One iteration's batch before it moves to the device (e.g. record its stream position)."""
        return batch

    def after_transfer(self, batch: dict) -> dict:
        """One iteration's batch on the device (e.g. convert uint8 pixels there)."""
        return batch

    def state_dict(self) -> dict:
        # One batch per iteration, so the iteration counter is the exact stream position.
        return {"batches_consumed": self._consumed()}

    def load_state_dict(self, state: dict) -> None:
        self.start_batch = int(state.get("batches_consumed", 0))

    def log_stats(self) -> dict[str, float]:
        """Counters the trainer logs summed over ranks (e.g. skipped corrupt samples); same keys on every rank."""
        return {}

    def reference_batches(self, batch_size: int):
        """Real samples for reference statistics: dicts {"x": [B, C, H, W] in [-1, 1], "y"?} in a
        fixed order (the same on every call and every rank), one pass over the data."""
        from ganscale.errors import UserError

        raise UserError(f"data.kind={self.cfg.data.kind} yields no real images in a fixed order; "
                        "use image data (data.kind=shards)")

    def reference_key(self) -> str:
        """Identifies the real data (and its preprocessing) in the reference-statistics cache key."""
        return f"{self.cfg.data.kind}:{self.info.shape}"

    def reference_cache_dir(self) -> Optional[str]:
        """Folder for cached reference statistics next to the data, or None (-> the run directory)."""
        return None
