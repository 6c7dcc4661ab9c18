"""`ganscale train [CONFIG.yaml ...] [key=value ...]`: YAML files compose in order over the
components' defaults, then the overrides. Without a YAML file it runs the default job, the
packaged configs/toy/ring.yaml (overrides apply on top of it):

    ganscale train                                   # the default job
    ganscale train trainer.max_iters=6000            # the default job, shorter
    ganscale train configs/toy/grid.yaml optim.D.lr=1e-4
"""

from __future__ import annotations

import os

from ganscale.config import load_config
from ganscale.config.default_job import default_job_path


def split_config_args(items: list[str]) -> tuple[list[str], list[str]]:
    """Arguments with '=' are overrides; the others are YAML paths."""
    paths = [a for a in items if "=" not in a]
    overrides = [a for a in items if "=" in a]
    return paths, overrides


def load_from_args(items: list[str]):
    paths, overrides = split_config_args(items)
    if not paths:  # the default job; its runs keep the name default-<time> (config_name unset)
        return load_config([default_job_path()], overrides)
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
