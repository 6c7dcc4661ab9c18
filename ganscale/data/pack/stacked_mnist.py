"""Stacked MNIST (Metz et al. 2017; the VEEGAN/PacGAN mode-collapse benchmark): three MNIST
digits drawn independently and stacked as the R, G and B channels, so there are 10^3 = 1,000
modes. The label of a sample is its mode, 100 * d_R + 10 * d_G + d_B.

    python benchmarks/stacked_mnist.py            # packs data/stacked-mnist-shards if missing, trains, counts modes
"""

from __future__ import annotations

import numpy as np

from ganscale.data.pack.sources import Item, Source, idx_source


def stacked_mnist_source(mnist: str, num: int, seed: int = 0, split: str = "train") -> Source:
    """`num` stacked samples from the MNIST IDX files in folder `mnist`, digits drawn with a seeded RNG."""
    digits = idx_source(mnist, split)
    images = np.stack([it.pixels for it in digits.items])
    labels = np.array([it.label for it in digits.items])
    pick = np.random.default_rng(seed).integers(0, len(images), size=(num, 3))
    items = [
        Item(source=f"stacked[{i}]", pixels=np.ascontiguousarray(images[p].transpose(1, 2, 0)),
             label=int(labels[p[0]] * 100 + labels[p[1]] * 10 + labels[p[2]]))
        for i, p in enumerate(pick)
    ]
    return Source("stacked-mnist", items, [f"{m:03d}" for m in range(1000)],
                  description={"kind": "stacked-mnist", "mnist": digits.description, "num": num, "seed": seed})
