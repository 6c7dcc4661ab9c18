"""`ganscale predict RUN_DIR_OR_CHECKPOINT --data DIGITS_DIR --split train|test --out PREDS.npy`:
the class labels a trained game's classifier gives a split (int64, shape (N,)).

    ganscale predict runs/ssl_gan --data ../shared/data/mnist --split test --out preds.npy

Games with a classifier (the semi-supervised GAN's Polyak-averaged D) define `predict`; the
test error of the same predictions is `ganscale eval RUN`.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from ganscale.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="class labels from a trained game's classifier", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="run directory or .ckpt file")
    p.add_argument("--data", required=True, help="folder with the IDX digit files (e.g. ../shared/data/mnist)")
    p.add_argument("--split", default="test", choices=("train", "test"), help="which split to classify")
    p.add_argument("--out", required=True, help="FILE.npy for the int64 labels")
    p.set_defaults(func=run)


def run(args) -> int:
    from ganscale.metrics.ssl import load_split
    from ganscale.train.restore import load_module

    if not args.out.endswith(".npy"):
        raise UserError(f"--out {args.out}: write the labels to a FILE.npy")
    module = load_module(args.source)
    predict = getattr(module.game, "predict", None)
    if predict is None:
        raise UserError(f"game {module.game.name!r} has no classifier to predict with (game.name=ssl_gan has one)")
    x, _ = load_split(args.data, args.split)
    preds = predict(module, x).numpy().astype(np.int64)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.save(args.out, preds)
    print(f"ganscale: wrote {len(preds)} labels to {args.out}")
    return 0
