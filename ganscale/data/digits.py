"""MNIST-style IDX digits held in memory (data.kind=digits), with a labelled stream beside the
unlabelled one for semi-supervised games.

    ganscale train configs/mnist/ssl_gan.yaml       # data.digits.labelled_per_class=10: 100 labels

Every batch holds `x` (n_disc per-rank chunks of the *unlabelled* stream: the whole train split,
float in [-1, 1], [N, 1, 28, 28]; `y` only with data.digits.labels=true) and, when
data.digits.labelled_per_class > 0, `x_lab`/`y_lab` from the labelled subset. A seed
(data.digits.labelled_seed) picks the labelled subset the way openai/improved-gan does: shuffle the
train split, take the first N images of every class. No other label enters a batch.

Both streams run through seeded epoch permutations of the *global* batch: iteration i's global
rows are positions [i*G, (i+1)*G) of the endless sequence perm_0, perm_1, ..., and rank r takes its
slice of every chunk, so N ranks with per-rank batch b see exactly what one process with N*b sees,
and a resumed run continues the stream exactly (batch i depends on i alone).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch.utils.data import DataLoader, IterableDataset

from ganscale.data.base import DataInfo, GANDataModule, IndexedBatches, stream_seed


def labelled_subset(labels: torch.Tensor, per_class: int, seed: int, num_classes: int = 10) -> torch.Tensor:
    """Indices of `per_class` images of every class: the first ones of each class in a seeded
    permutation of the split (openai/improved-gan's choice). Sorted by class, then by draw."""
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    picks = []
    for c in range(num_classes):
        of_class = perm[labels[perm] == c]
        if len(of_class) < per_class:
            from ganscale.errors import UserError

            raise UserError(f"data.digits.labelled_per_class={per_class}: class {c} has only {len(of_class)} images")
        picks.append(of_class[:per_class])
    return torch.cat(picks)


def first_images(cfg, n: int) -> torch.Tensor:
    """The first n images of the unlabelled stream's order (float in [-1, 1]): the same on every
    rank, for data-dependent initialisation (the semi-supervised GAN's D)."""
    from ganscale.data.idx import load_digits

    images, _ = load_digits(cfg.data.digits.path, "train")
    return to_unit_range(images[EpochStream(len(images), cfg.seed, 0).rows(0, min(n, len(images)))])


class EpochStream:
    """Rows of an endless sequence of seeded permutations of range(n): position p is
    perm_{p // n}[p % n], perm_e seeded by (seed, stream, e)."""

    def __init__(self, n: int, seed: int, stream: int):
        self.n, self.seed, self.stream = n, seed, stream
        self._perms: dict[int, torch.Tensor] = {}

    def perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            g = torch.Generator().manual_seed(stream_seed(self.seed, self.stream, epoch))
            self._perms[epoch] = torch.randperm(self.n, generator=g)
        return self._perms[epoch]

    def rows(self, start: int, count: int) -> torch.Tensor:
        pos = torch.arange(start, start + count)
        epochs = pos // self.n
        out = torch.empty(count, dtype=torch.long)
        for e in epochs.unique().tolist():
            sel = epochs == e
            out[sel] = self.perm(e)[pos[sel] % self.n]
        return out


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float in [-1, 1]."""
    return x.float().div(127.5).sub(1.0)


class DigitsStream(IndexedBatches, IterableDataset):
    """Yields batch dicts; batch i depends on i alone. Worker w of W yields batches start+w,
    start+w+W, ... so the DataLoader's round robin returns them in order."""

    def __init__(self, dm: "DigitsDataModule", rank: int, world: int, start: int, batch: int, labelled_batch: int):
        self.dm, self.rank, self.world, self.start = dm, rank, world, start
        self.batch, self.labelled_batch = batch, labelled_batch

    def batch_at(self, i: int) -> dict:
        dm, r, w = self.dm, self.rank, self.world
        b, k = self.batch, dm.batches_per_iter
        g = k * b * w  # the global rows of one iteration: k chunks of w * b
        pos = [i * g + j * w * b + r * b for j in range(k)]
        idx = torch.cat([dm.unlabelled.rows(p, b) for p in pos])
        out = {"x": to_unit_range(dm.images[idx])}
        if dm.digits.labels:
            out["y"] = dm.labels[idx]
        if dm.lab_index is not None:
            bl = self.labelled_batch
            lab = dm.labelled.rows(i * bl * w + r * bl, bl)
            out["x_lab"], out["y_lab"] = to_unit_range(dm.lab_images[lab]), dm.lab_labels[lab]
        return out


class DigitsDataModule(GANDataModule):
    def __init__(self, cfg):
        super().__init__(cfg)
        from ganscale.data.idx import load_digits

        self.digits = cfg.data.digits
        self.images, self.labels = load_digits(self.digits.path, "train")
        n_classes = int(self.labels.max()) + 1
        self.info = DataInfo(kind="image", shape=tuple(self.images.shape[1:]),
                             num_classes=n_classes if self.digits.labels else 0)
        self.unlabelled = EpochStream(len(self.images), cfg.seed, 0)
        self.lab_index: Optional[torch.Tensor] = None
        """Train-split indices of the labelled images (None without a labelled stream)."""
        if self.digits.labelled_per_class > 0:
            self.lab_index = labelled_subset(self.labels, self.digits.labelled_per_class, self.digits.labelled_seed,
                                             n_classes)
            # copies: the labelled stream reads only these, never the split's label array
            self.lab_images, self.lab_labels = self.images[self.lab_index].clone(), self.labels[self.lab_index].clone()
            self.labelled = EpochStream(len(self.lab_index), cfg.seed, 1)
        self.labelled_batch = self.digits.labelled_batch_size or cfg.data.batch_size

    def stream(self, start: Optional[int] = None) -> DigitsStream:
        return DigitsStream(self, self.rank, self.world_size, self.start_batch if start is None else start,
                            self.cfg.data.batch_size, self.labelled_batch)

    def iteration_loader(self):
        nw = self.cfg.data.num_workers
        return DataLoader(self.stream(), batch_size=None, num_workers=nw, persistent_workers=nw > 0)
