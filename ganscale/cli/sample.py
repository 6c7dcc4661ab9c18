"""`ganscale sample RUN_DIR_OR_CHECKPOINT --num N --out OUT [--seed S] [--class C[,C...]] [--truncation T]
[--text CAPTION | --captions FILE]`

Samples come from G_ema when the run has one. Same seed, same samples. The source is a run directory,
a checkpoint file or a folder written by `ganscale export`; nothing is unpickled.

    ganscale sample runs/ring --num 2500 --out ring.npy                     # points: float32 (N, D)
    ganscale sample runs/mnist --num 100 --out digits.npy                  # images: uint8 (N, H, W, C)
    ganscale sample runs/seqgan --num 100 --out tokens.npy                 # token sequences: int64 (N, length)
    ganscale sample runs/mnist --num 100 --out grid.png --class 0,1,2,3    # one PNG grid
    ganscale sample runs/in128 --num 500 --out samples/ --class 207 --truncation 0.5   # a folder of PNGs
    ganscale sample runs/digits --text "a red 3 in the top left" --num 16 --out grid.png   # text-to-image
    ganscale sample runs/cub --captions captions.txt --num 64 --out birds/                 # line i mod L

InfoGAN (game.name=infogan): --code NAME=VALUE fixes a latent code (cat=K, c0=V, c1=V) and draws
the rest; the traversal figures (rows = categories, columns = one continuous code swept -2..2)
are written beside OUT as OUT_traversal_c<j>.png:

    ganscale sample runs/infogan --code cat=3 --code c0=-1.5 --num 64 --out grid.png

--class: a class-conditional G draws sample i from class C[i % len(C)] (default: uniformly random
classes). --text / --captions: a text-to-image run draws sample i for the caption (line i mod L of
FILE); a PNG grid prints each caption under its image. --truncation T: z is drawn from the normal
truncated to [-T, T] (BigGAN's truncation trick). --standing-stats N: G's BatchNorm statistics are
re-estimated over N training-mode batches first (BigGAN's standing statistics).
OUT ending in .npy or .png, or else a folder (one PNG per sample, 000000.png, ...).
"""

from __future__ import annotations

import argparse
import os
from typing import Optional

import numpy as np

from ganscale.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="draw samples from a trained G", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="run directory, .ckpt file or a folder written by `ganscale export`")
    p.add_argument("--num", type=int, default=2500, help="number of samples")
    p.add_argument("--out", required=True, help="FILE.npy, FILE.png (image grid) or a folder for one PNG per sample")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same samples)")
    p.add_argument("--class", dest="classes", default=None,
                   help="class index or comma-separated list; sample i gets class C[i %% len(C)]")
    p.add_argument("--truncation", type=float, default=None, help="truncate z to [-T, T] (T > 0)")
    p.add_argument("--text", default=None, help="text-to-image: the caption of every sample")
    p.add_argument("--captions", default=None, help="text-to-image: a file of captions, one per line; "
                   "sample i uses line i mod L")
    p.add_argument("--code", dest="codes", action="append", default=[],
                   help="NAME=VALUE: fix a latent code of a game that has codes (InfoGAN: cat=3, c0=-1.5); repeatable")
    p.add_argument("--standing-stats", type=int, default=0, metavar="N",
                   help="BigGAN's standing statistics: re-estimate G's BatchNorm statistics over N training-mode "
                        "batches before sampling (0 = those kept in training)")
    p.add_argument("--nrow", type=int, default=0, help="images per row of a PNG grid (default: about sqrt(N))")
    p.set_defaults(func=run)


def parse_classes(text: Optional[str], num_classes: int, num: int):
    """The label tensor for --class, or None (the model draws random classes)."""
    import torch

    if text is None:
        return None
    if num_classes == 0:
        raise UserError("--class needs a class-conditional model; this run's G is unconditional")
    try:
        classes = [int(c) for c in text.split(",") if c.strip() != ""]
    except ValueError:
        raise UserError(f"--class {text!r}: give class indices, e.g. --class 3 or --class 0,1,2") from None
    bad = [c for c in classes if not 0 <= c < num_classes]
    if not classes or bad:
        raise UserError(f"--class {text!r}: classes must be in 0..{num_classes - 1}")
    return torch.tensor(classes, dtype=torch.long).repeat((num + len(classes) - 1) // len(classes))[:num]


def parse_captions(text: Optional[str], path: Optional[str], num: int) -> Optional[list[str]]:
    """The caption of each of the num samples (--text, or line i mod L of --captions), or None."""
    if text is not None and path is not None:
        raise UserError("give --text or --captions, not both")
    if text is not None:
        if not text.strip():
            raise UserError("--text is empty; give a caption, e.g. --text \"a red 3 in the top left\"")
        lines = [text.strip()]
    elif path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                lines = [line.strip() for line in f if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"--captions {path}: cannot read it ({e}); give a UTF-8 text file, one caption per "
                            "line") from None
        if not lines:
            raise UserError(f"--captions {path} has no captions; write one caption per line")
    else:
        return None
    return [lines[i % len(lines)] for i in range(num)]


def output_kind(out: str) -> str:
    ext = os.path.splitext(out)[1].lower()
    if ext in (".npy", ".png"):
        return ext[1:]
    if ext and not os.path.isdir(out):
        raise UserError(f"--out {out}: use FILE.npy, FILE.png (grid) or a folder (one PNG per sample)")
    return "folder"


def write_png_folder(images: np.ndarray, folder: str) -> None:
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(os.path.join(folder, f"{i:06d}.png"))


def draw(module, args, captions, with_codes):
    """The samples the arguments ask for."""
    if module.condition.name == "text":
        from ganscale.games.text2img import sample_captions

        if captions is None:
            raise UserError("this is a text-to-image run: give the captions with --text \"...\" or --captions FILE")
        return sample_captions(module, captions, seed=args.seed)
    if captions is not None:
        raise UserError("--text/--captions need a text-to-image run (game.condition=text); this run's G "
                        f"is conditioned on {module.condition.name}")
    if with_codes is not None:
        from ganscale.metrics.infogan import parse_codes

        return with_codes(module, args.num, args.seed, parse_codes(args.codes, module.sampler))
    y = parse_classes(args.classes, module.sampler.num_classes, args.num)
    return module.sample(args.num, seed=args.seed, y=y, truncation=args.truncation)


def run(args) -> int:
    from ganscale.train.restore import load_module

    if args.num < 1:
        raise UserError(f"--num {args.num}: ask for at least one sample")
    if args.truncation is not None and args.truncation <= 0:
        raise UserError(f"--truncation {args.truncation}: must be > 0")
    if args.standing_stats < 0:
        raise UserError(f"--standing-stats {args.standing_stats}: must be >= 0 (0 = off)")
    kind = output_kind(args.out)
    captions = parse_captions(args.text, args.captions, args.num)
    module = load_module(args.source)
    with_codes = getattr(module.game, "sample_with_codes", None)
    if args.codes and with_codes is None:
        raise UserError(f"--code: game {module.game.name!r} has no latent codes (game.name=infogan has)")
    with module.standing_stats(args.standing_stats, seed=args.seed):
        x = draw(module, args, captions, with_codes)
    if kind != "folder":
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if module.info.kind == "image":
        from ganscale.metrics.plots import image_grid, to_uint8_images

        imgs = to_uint8_images(x)
        if kind == "png" and captions is not None:
            from ganscale.metrics.plots import captioned_grid

            captioned_grid(imgs, captions, args.out, ncol=args.nrow)
        elif kind == "png":
            image_grid(imgs, args.out, nrow=args.nrow or None)
        elif kind == "npy":
            np.save(args.out, imgs)
        else:
            write_png_folder(imgs, args.out)
    else:
        if kind != "npy":
            raise UserError("PNG output is for image models; use --out FILE.npy for points or token sequences")
        # token sequences (game.name=seqgan): int64 ids [N, length]; points: float32 (N, D)
        np.save(args.out, x.numpy().astype(np.int64 if module.info.kind == "tokens" else np.float32))
    print(f"ganscale: wrote {args.num} samples to {args.out}")
    traversals = getattr(module.game, "traversals", None)
    if traversals is not None:
        from ganscale.metrics.plots import image_grid, to_uint8_images

        stem = os.path.splitext(args.out.rstrip("/"))[0]
        for name, images in traversals(module, args.seed).items():
            path = image_grid(to_uint8_images(images), f"{stem}_traversal_{name}.png",
                              nrow=len(images) // module.sampler.num_categories)
            print(f"ganscale: wrote the traversal of {name} to {path}")
    return 0
