"""`ganscale` command line: a thin dispatcher over one module per subcommand.

    ganscale train [CONFIG.yaml ...] [key=value ...]
    ganscale sample RUN_DIR_OR_CHECKPOINT --num N --out FILE.npy [--seed S]
    ganscale encode RUN_DIR_OR_CHECKPOINT --data MNIST_DIR --split train|test --out z.npy   (BiGAN / ALI E(x))
    ganscale launch slurm [CONFIG.yaml ...] [key=value ...] --nodes N --gpus-per-node G --time T --partition P
    ganscale data pack SRC OUT [options]     |     ganscale data verify SHARD_DIR
    ganscale data synth captioned-digits OUT --split train|test  |  ganscale data embed SHARDS --model PATH --out DIR
    ganscale eval RUN_DIR_OR_CHECKPOINT [key=value ...]       (FID, KID, IS, precision/recall; a game's own metrics)
    ganscale predict RUN_DIR_OR_CHECKPOINT --data DIR --split test --out preds.npy   (a game's classifier)
    ganscale export RUN_DIR_OR_CHECKPOINT --out DIR [--with-g] [--with-d]   (safetensors + model card)
    ganscale classifier train|test --data MNIST_DIR ...       (feature network for digit data)
    ganscale text train CONFIG.yaml [key=value ...]          (DAMSM text encoder for text-to-image)
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from ganscale.cli import classifier, data, encode, evaluate, export, launch, predict, sample, text, train
from ganscale.errors import UserError

COMMANDS = [train, sample, encode, data, evaluate, predict, export, classifier, launch, text]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganscale", description="Distributed GAN training.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS:
        cmd.add_parser(sub)
    return parser


# Commands whose positional arguments take key=value overrides; a W&B sweep agent passes them as
# `--key=value` (`program --optim.G.lr=2e-4 --seed=3`), see launch/sweeps/.
OVERRIDE_COMMANDS = ("train", "eval", "launch")
TOP_LEVEL_KEYS = ("seed", "config_name")  # the root config's own scalars (none is an option name)


def sweep_overrides(argv: list[str]) -> list[str]:
    """`--a.b=1` -> `a.b=1` (and `--seed=3` -> `seed=3`) for the override-taking commands.
    Options of those commands never contain a dot and are not named like a root config field."""
    if not argv or argv[0] not in OVERRIDE_COMMANDS:
        return argv
    out = []
    for a in argv:
        key = a[2:].split("=", 1)[0] if a.startswith("--") and "=" in a else ""
        out.append(a[2:] if key and ("." in key or key in TOP_LEVEL_KEYS) else a)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sweep_overrides(list(sys.argv[1:] if argv is None else argv)))
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"ganscale {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
