"""`ganscale sample RUN_DIR_OR_CHECKPOINT --num N --out FILE.npy [--seed S]`

Samples come from G_ema when the run has one. Points (the toys) are saved as float32 (N, D);
images as uint8 (N, H, W, C) in .npy, or as a PNG grid with --out FILE.png. Same seed, same samples.
"""

from __future__ import annotations

import os

import numpy as np

from ganscale.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="draw samples from a trained G", description=__doc__)
    p.add_argument("source", help="run directory or .ckpt file")
    p.add_argument("--num", type=int, default=2500, help="number of samples")
    p.add_argument("--out", required=True, help="output file: .npy (or .png for images)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same samples)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ganscale.train.restore import load_module

    if args.num < 1:
        raise UserError(f"--num {args.num}: ask for at least one sample")
    ext = os.path.splitext(args.out)[1].lower()
    if ext not in (".npy", ".png"):
        raise UserError(f"--out {args.out}: use a .npy file (or .png for images)")
    module = load_module(args.source)
    x = module.sample(args.num, seed=args.seed)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if module.info.kind == "image":
        from ganscale.train.plots import to_uint8_images

        imgs = to_uint8_images(x)
        if ext == ".png":
            from ganscale.train.plots import image_grid

            image_grid(imgs, args.out)
        else:
            np.save(args.out, imgs)
    else:
        if ext == ".png":
            raise UserError("PNG output is for image models; use --out FILE.npy for points")
        np.save(args.out, x.numpy().astype(np.float32))
    print(f"ganscale: wrote {args.num} samples to {args.out}")
    return 0
