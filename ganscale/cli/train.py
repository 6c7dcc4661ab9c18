"""`ganscale train [CONFIG.yaml ...] [key=value ...]`: YAML files compose in order over the
defaults, then the overrides. With nothing given it runs the default toy job."""

from __future__ import annotations

import os

from ganscale.config import load_config


def split_config_args(items: list[str]) -> tuple[list[str], list[str]]:
    """Arguments with '=' are overrides; the others are YAML paths."""
    paths = [a for a in items if "=" not in a]
    overrides = [a for a in items if "=" in a]
    return paths, overrides


def load_from_args(items: list[str]):
    paths, overrides = split_config_args(items)
    if paths:
        overrides = [f"config_name={os.path.splitext(os.path.basename(paths[-1]))[0]}", *overrides]
    return load_config(paths, overrides)


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a GAN", description=__doc__)
    p.add_argument("config", nargs="*", help="YAML config files and key=value overrides")
    p.set_defaults(func=run)


def run(args) -> int:
    from ganscale.ops.config import signal_number
    from ganscale.ops.signals import install

    cfg = load_from_args(args.config)
    install(signal_number(cfg.slurm.signal))  # before the slow imports: a preemption signal must not kill us
    from ganscale.train.run import main

    main(cfg)
    return 0
