"""MNIST-style IDX files as tensors: the digit classifier, the in-memory digits data and the
latent evaluations read them from one place.

    images, labels = load_digits("../shared/data/mnist", "train")   # uint8 [N, 1, 28, 28], int64 [N]
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from ganscale.errors import UserError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def load_digits(folder: str, split: str) -> tuple[Tensor, Tensor]:
    """uint8 images [N, 1, 28, 28] and int64 labels of the `train` or `test` split."""
    from ganscale.data.pack.sources import read_idx

    paths = [os.path.join(folder, name) for name in IDX_FILES[split]]
    for path in paths:
        if not os.path.isfile(path):
            raise UserError(f"{path} does not exist; point --data at the folder holding the MNIST IDX files "
                            f"({', '.join(IDX_FILES['train'] + IDX_FILES['test'])})")
    images, labels = (read_idx(p).copy() for p in paths)
    if len(images) != len(labels):
        raise UserError(f"{folder}: {len(images)} images but {len(labels)} labels in the {split} split")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()
