"""`ganscale encode RUN_DIR_OR_CHECKPOINT --data MNIST_DIR --split train|test --out z.npy`

Writes E(x) of a game with an encoder (game.name=bigan: BiGAN / ALI) for every image of the split
of the MNIST-style IDX files, float32 (N, z_dim), in the files' order; a Gaussian (ALI) encoder
gives its mean. E runs in eval mode (BatchNorm's running statistics).

    ganscale encode runs/bigan-mnist --data ../shared/data/mnist --split test --out z_test.npy
    ganscale encode runs/bigan-mnist --data ../shared/data/mnist --split train --out z_train.npy
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from ganscale.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("encode", help="write E(x) of a trained encoder (BiGAN / ALI) for a data split",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="run directory, .ckpt file or a folder written by `ganscale export`")
    p.add_argument("--data", required=True, help="folder with the MNIST-style IDX files (train-* and t10k-*)")
    p.add_argument("--split", choices=("train", "test"), default="test", help="which split (default test)")
    p.add_argument("--out", required=True, help="FILE.npy: float32 (N, z_dim)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ganscale.data.idx import load_digits
    from ganscale.metrics.latent import encode
    from ganscale.train.restore import load_module

    if not args.out.endswith(".npy"):
        raise UserError(f"--out {args.out}: give a FILE.npy")
    module = load_module(args.source)
    if "E" not in module.net_names:
        raise UserError(f"{args.source}: game {module.game.name!r} has no encoder E; train with game.name=bigan")
    images, _ = load_digits(args.data, args.split)
    if tuple(images.shape[1:]) != tuple(module.info.shape):
        raise UserError(f"--data {args.data}: images of shape {tuple(images.shape[1:])}, but the encoder "
                        f"was trained on {tuple(module.info.shape)}")
    z = encode(module.E, images).numpy().astype(np.float32)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.save(args.out, z)
    print(f"ganscale: wrote E(x) of {len(z)} {args.split} images, shape {z.shape}, to {args.out}")
    return 0
