"""Turn a DeepSpeed checkpoint of ganscale into a plain one (one file, fp32 weights).

    python -m ganscale.distributed.convert RUN_DIR/checkpoints/iter_00003000.ckpt plain.ckpt

Under strategy.name=deepspeed a checkpoint is `iter_N.ckpt` (Lightning state, G_ema, G and D at
the engines' precision) plus `iter_N.ckpt.deepspeed/{G,D}/` (each engine's ZeRO shards, with the
fp32 master weights and the partitioned optimizer state). The plain checkpoint has G and D
rebuilt in fp32 from the shards (DeepSpeed's zero_to_fp32), any world size can read it:
`ganscale sample plain.ckpt ...`, `torch.load(...)["state_dict"]` for `GANModule.load_state_dict`.
It keeps the weights only: the optimizer state stays partitioned for the world size that wrote
it, so resuming *training* needs that world size and the original checkpoint. Nothing read runs
code: the checkpoint loads with `weights_only=True`, the shards through safe_shards.py.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from ganscale.distributed.safe_shards import restricted_loads
from ganscale.errors import UserError
from ganscale.utils.safe_load import load_checkpoint_file
from ganscale.utils.files import atomic_torch_save

GAN_PLAYERS = {"G": ["G"], "D": ["D"]}  # checkpoints written before games named their players


def _net_key(nets: list, key: str) -> str:
    """A key of a player's engine state -> the engine module's key. A player of one network was
    handed to DeepSpeed as that network; one of several as a ModuleList (`<index>.<key>`)."""
    if len(nets) == 1:
        return f"{nets[0]}.{key}"
    index, _, rest = key.partition(".")
    return f"{nets[int(index)]}.{rest}"


def plain_state_dict(checkpoint_path: str) -> dict:
    """The checkpoint dict of `checkpoint_path` with every player's networks as fp32 tensors from
    the ZeRO shards (one engine per player, tagged with the player's name)."""
    from ganscale.distributed.deepspeed import engines_dir, import_deepspeed

    if not os.path.isfile(checkpoint_path):
        raise UserError(f"{checkpoint_path} does not exist; pass a checkpoints/iter_*.ckpt file of a DeepSpeed run")
    ckpt = load_checkpoint_file(checkpoint_path)  # weights_only: a checkpoint never runs code
    ds_dir = engines_dir(checkpoint_path)
    if "ganscale_deepspeed" not in ckpt or not os.path.isdir(ds_dir):
        raise UserError(f"{checkpoint_path} is not a DeepSpeed checkpoint of ganscale (no {ds_dir}); "
                        "it is already a plain checkpoint")
    import_deepspeed("cpu")
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    players = ckpt.get("ganscale", {}).get("players") or GAN_PLAYERS
    owned = tuple(f"{n}." for nets in players.values() for n in nets)
    state = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith(owned)}
    for player, nets in players.items():
        with restricted_loads():  # DeepSpeed's shards, unpickled with an allow-list (safe_shards.py)
            weights = get_fp32_state_dict_from_zero_checkpoint(ds_dir, tag=player)
        state.update({_net_key(nets, k): v.float() for k, v in weights.items()})
    # buffers (BatchNorm statistics, spectral-norm vectors) are not in the ZeRO shards: keep them
    for k, v in ckpt["state_dict"].items():
        state.setdefault(k, v.float() if v.is_floating_point() else v)
    ckpt["state_dict"] = state
    ckpt["ganscale_converted_from"] = ckpt.pop("ganscale_deepspeed")
    ckpt["optimizer_states"] = []  # partitioned for the world size that wrote them; not converted
    return ckpt


def convert(checkpoint_path: str, out_path: str) -> str:
    ckpt = plain_state_dict(checkpoint_path)
    atomic_torch_save(ckpt, out_path)
    return out_path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ganscale.distributed.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="iter_N.ckpt of a strategy.name=deepspeed run")
    p.add_argument("out", help="output .ckpt (plain, fp32 weights)")
    args = p.parse_args(argv)
    try:
        convert(args.checkpoint, args.out)
    except UserError as e:
        print(f"ganscale convert: error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"ganscale: wrote plain checkpoint {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
