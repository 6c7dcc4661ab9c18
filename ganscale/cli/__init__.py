"""`ganscale` command line: a thin dispatcher over one module per subcommand.

    ganscale train [CONFIG.yaml ...] [key=value ...]
    ganscale sample RUN_DIR_OR_CHECKPOINT --num N --out FILE.npy [--seed S]
    ganscale launch slurm [CONFIG.yaml ...] [key=value ...] --nodes N --gpus-per-node G --time T --partition P
    ganscale data pack SRC OUT [options]     |     ganscale data verify SHARD_DIR
    ganscale data synth captioned-digits OUT --split train|test  |  ganscale data embed SHARDS --model PATH --out DIR
    ganscale eval RUN_DIR_OR_CHECKPOINT [key=value ...]       (FID, KID, IS, precision/recall; a game's own metrics)
    ganscale predict RUN_DIR_OR_CHECKPOINT --data DIR --split test --out preds.npy   (a game's classifier)
    ganscale classifier train|test --data MNIST_DIR ...       (feature network for digit data)
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from ganscale.cli import classifier, data, evaluate, launch, predict, sample, train
from ganscale.errors import UserError

COMMANDS = [train, sample, data, evaluate, predict, classifier, launch]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganscale", description="Distributed GAN training.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS:
        cmd.add_parser(sub)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"ganscale {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
