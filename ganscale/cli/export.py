"""`ganscale export RUN_DIR_OR_CHECKPOINT --out DIR [--with-g] [--with-d]`: the folder people share.

    ganscale export runs/mnist --out exported/mnist
    ganscale sample exported/mnist --num 64 --out grid.png --seed 0    # same samples as from runs/mnist
    ganscale eval exported/mnist eval.num_samples=10000

DIR gets model.safetensors (G_ema, or G without EMA), config.json, README.md (a Hugging Face model
card with the run's final metrics and samples.png) and, with --with-g / --with-d, generator.safetensors
and discriminator.safetensors. Upload it as is: `huggingface-cli upload USER/REPO DIR`.
"""

from __future__ import annotations

import argparse
import os


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a trained G as safetensors + config.json + model card",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="run directory or .ckpt file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--with-g", action="store_true", help="also write G (generator.safetensors)")
    p.add_argument("--with-d", action="store_true", help="also write D (discriminator.safetensors)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ganscale.export.write import export_run

    files = export_run(args.source, args.out, with_g=args.with_g, with_d=args.with_d)
    print(f"ganscale: exported {', '.join(files)}, config.json, README.md to {os.path.abspath(args.out)}")
    return 0
