"""Rebuild a trained GANModule from a run directory or a checkpoint file (for sampling, eval)."""

from __future__ import annotations

import os

import torch

from ganscale.config import config_from_dict
from ganscale.data.base import DataInfo
from ganscale.errors import UserError
from ganscale.ops.checkpoint import list_checkpoints
from ganscale.train.module import GANModule


def find_checkpoint(path: str) -> str:
    """`path` itself if it is a file, else the newest checkpoint of the run directory `path`."""
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        ckpts = list_checkpoints(os.path.join(path, "checkpoints")) or list_checkpoints(path)
        if ckpts:
            return ckpts[-1]
        raise UserError(f"{path} holds no checkpoint (looked for checkpoints/iter_*.ckpt with its .complete "
                        "marker); train first or pass a .ckpt file")
    raise UserError(f"{path} does not exist; pass a run directory or a .ckpt file")


def load_module(path: str, map_location: str = "cpu") -> GANModule:
    ckpt_file = find_checkpoint(path)
    try:
        ckpt = torch.load(ckpt_file, map_location=map_location, weights_only=False)
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"cannot read checkpoint {ckpt_file}: {e}; pass a complete ganscale checkpoint") from None
    if "ganscale" not in ckpt:
        raise UserError(f"{ckpt_file} is not a ganscale checkpoint (no 'ganscale' entry)")
    meta = ckpt["ganscale"]
    cfg = config_from_dict(meta["config"])
    info = DataInfo(meta["info"]["kind"], tuple(meta["info"]["shape"]), meta["info"]["num_classes"])
    module = GANModule(cfg, info)
    module.load_state_dict(ckpt["state_dict"])
    module.iteration = int(meta["iteration"])
    return module.eval()
