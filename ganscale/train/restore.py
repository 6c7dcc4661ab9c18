"""Rebuild a trained GANModule for sampling and evaluation, from any of:

    runs/ring                                a run directory (its newest complete checkpoint)
    runs/ring/checkpoints/iter_00032000.ckpt  one checkpoint file
    exported/ring                            a folder written by `ganscale export` (safetensors)

Nothing is unpickled: checkpoints load with `weights_only=True` (ganscale.utils.safe_load),
exported folders are JSON and safetensors (ganscale.export.pretrained).
"""

from __future__ import annotations

import os

from ganscale.config import config_from_dict
from ganscale.data.base import DataInfo
from ganscale.errors import UserError
from ganscale.ops.checkpoint import list_checkpoints
from ganscale.utils.safe_load import load_checkpoint_file
from ganscale.train.module import GANModule


def is_exported(path: str) -> bool:
    """True for a folder written by `ganscale export` (config.json + model.safetensors)."""
    from ganscale.export.pretrained import CONFIG_FILE, WEIGHTS_FILE

    return os.path.isfile(os.path.join(path, CONFIG_FILE)) and os.path.isfile(os.path.join(path, WEIGHTS_FILE))


def find_checkpoint(path: str) -> str:
    """`path` itself if it is a file or an exported folder, else the newest checkpoint of the run directory."""
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        if is_exported(path):
            return path
        ckpts = list_checkpoints(os.path.join(path, "checkpoints")) or list_checkpoints(path)
        if ckpts:
            return ckpts[-1]
        raise UserError(f"{path} holds no checkpoint (looked for checkpoints/iter_*.ckpt with its .complete "
                        "marker, or config.json + model.safetensors of `ganscale export`); train first or pass "
                        "a .ckpt file")
    raise UserError(f"{path} does not exist; pass a run directory, a .ckpt file or an exported folder")


def module_from_meta(meta: dict, source: str) -> GANModule:
    """An untrained GANModule for the stored config and data info (checkpoint or config.json)."""
    try:
        cfg_dict, info_dict = meta["config"], meta["info"]
        info = DataInfo.from_dict(info_dict)
        iteration = int(meta["iteration"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{source} has no usable ganscale metadata ({type(e).__name__}: {e}); "
                        "pass a checkpoint written by `ganscale train` or a folder written by `ganscale export`") \
            from None
    if not isinstance(cfg_dict, dict):
        raise UserError(f"{source}: the stored config is a {type(cfg_dict).__name__}, not a mapping")
    module = GANModule(config_from_dict(cfg_dict), info)
    module.iteration = iteration
    return module


def load_module(path: str, map_location: str = "cpu") -> GANModule:
    """The GANModule of a run directory, a checkpoint file or an exported folder, in eval mode."""
    source = find_checkpoint(path)
    if os.path.isdir(source):
        from ganscale.export.pretrained import from_pretrained

        return from_pretrained(source)
    ckpt = load_checkpoint_file(source, map_location=map_location)
    if "ganscale" not in ckpt or "state_dict" not in ckpt:
        raise UserError(f"{source} is not a ganscale checkpoint (no 'ganscale' entry)")
    module = module_from_meta(ckpt["ganscale"], source)
    try:
        module.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as e:
        raise UserError(f"{source}: the weights do not match the model its config describes "
                        f"({str(e).strip().splitlines()[0][:300]}); the checkpoint is damaged or edited") from None
    return module.eval()
