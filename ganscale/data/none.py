"""`data.kind=none`: no data set, for games that draw every input themselves with the engine's
seeded draws (adversarial cryptography's plaintexts and keys, ganscale.games.crypto).

    ganscale train configs/crypto/abadi16.yaml       # data.kind: none

Each batch is {"index": i}, the iteration's position in the stream: the training loop needs one
batch per iteration and nothing more.
"""

from __future__ import annotations

import itertools

import torch
from torch.utils.data import DataLoader, IterableDataset

from ganscale.data.base import DataInfo, GANDataModule


class _Counter(IterableDataset):
    def __init__(self, start: int):
        self.start = start

    def __iter__(self):
        for i in itertools.count(self.start):
            yield {"index": torch.tensor(i)}


class NoDataModule(GANDataModule):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.info = DataInfo(kind="none", shape=(0,), num_classes=0)

    def iteration_loader(self):
        return DataLoader(_Counter(self.start_batch), batch_size=None)
