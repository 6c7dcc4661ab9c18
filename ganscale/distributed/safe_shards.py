"""DeepSpeed's own shard files (`iter_N.ckpt.deepspeed/{G,D}/*.pt`), read without running code.

DeepSpeed loads them with `torch.load(weights_only=False)` (its TorchCheckpointEngine and
zero_to_fp32). What they hold beyond tensors and plain types (DeepSpeed 0.14-0.19, ZeRO 1/2):

    mp_rank_00_model_states.pt           torch.Size (allowed by PyTorch's restricted unpickler)
    zero_pp_rank_*_optim_states.pt       deepspeed.runtime.fp16.loss_scaler.LossScaler (its
                                         attributes only), deepspeed.runtime.zero.config.ZeroStageEnum,
                                         deepspeed.utils.tensor_fragment.fragment_address (numel, start)

Those three are data classes whose reconstruction calls no user code, so they are added to
`weights_only=True`'s allow-list and every other global is refused. `restricted_loads()` swaps
DeepSpeed's `torch.load` for that restricted one while a resume or a conversion reads the shards:

    with restricted_loads():
        engine.load_checkpoint(ds_dir, tag="G")
"""

from __future__ import annotations

import contextlib
import pickle
from typing import Iterator

import torch

from ganscale.errors import UserError
from ganscale.utils.safe_load import unsupported_global

# modules of DeepSpeed that call torch.load on checkpoint files
_LOADERS = ("deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine", "deepspeed.utils.zero_to_fp32")


def allowed_globals() -> list:
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]


def restricted_load(f, map_location=None, weights_only=None, **kwargs):
    """torch.load with weights_only=True and DeepSpeed's data classes allowed (whatever the caller asked)."""
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(f, map_location=map_location, weights_only=True, **kwargs)
    except pickle.UnpicklingError as e:
        what = unsupported_global(e) or "an unsupported pickle instruction"
        raise UserError(f"refusing to load DeepSpeed shard {f}: it asks to unpickle {what}, which is neither a "
                        "tensor nor one of DeepSpeed's checkpoint data classes; do not use this checkpoint") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise UserError(f"cannot read DeepSpeed shard {f}: it is truncated or not a PyTorch file "
                        f"({type(e).__name__}); the checkpoint is incomplete") from None


class _RestrictedTorch:
    """Stands in for the `torch` module inside DeepSpeed's loaders: everything is torch's, except load."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    @staticmethod
    def load(f, map_location=None, weights_only=None, **kwargs):
        return restricted_load(f, map_location=map_location, **kwargs)


@contextlib.contextmanager
def restricted_loads() -> Iterator[None]:
    """While inside, DeepSpeed's checkpoint loaders read with `restricted_load`."""
    import importlib

    modules = [importlib.import_module(name) for name in _LOADERS]
    saved = [m.torch for m in modules]
    for m in modules:
        m.torch = _RestrictedTorch(torch)
    try:
        yield
    finally:
        for m, real in zip(modules, saved):
            m.torch = real
