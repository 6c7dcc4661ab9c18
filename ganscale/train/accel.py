"""Speed switches of the trainer, applied once to the built module (ganscale.train.run.setup).

    ganscale train configs/imagenet/biggan128.yaml trainer.accelerator=gpu trainer.precision=bf16-mixed \\
        trainer.compile=true trainer.channels_last=true          # + fused Adam and TF32, on by default on CUDA

    trainer.compile         G.compile() and D.compile(): nn.Module.compile compiles the module's call
                            in place, so parameters, G_ema's copy and checkpoint keys stay the same
    trainer.channels_last   every 4D parameter and buffer in channels-last memory format (convs then
                            produce channels-last activations); MLPs are untouched
    trainer.tf32            torch.backends' TF32 flags for CUDA matmuls and cuDNN convolutions
    optim.*.fused           fused Adam on CUDA (ganscale.train.optim.build_optimizer)

The TF32 flags are process-global: `tf32_flags(cfg)` sets them for the run and gives the previous
values back afterwards (ganscale.train.run.main), like the CPU thread count.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


def apply_accel(module, cfg) -> None:
    """channels_last and compile on the engine's networks before training."""
    if cfg.trainer.channels_last:
        # Module.to(memory_format=...) converts only 4D tensors: G, D and G_ema's conv weights
        module.to(memory_format=torch.channels_last)
    if cfg.trainer.compile:
        # every network of the game, in place (checkpoint keys unchanged); G_ema (an AveragedModel
        # made from G at construction) stays eager: it only samples
        for net in module.game_nets():
            net.compile()


@contextmanager
def tf32_flags(cfg) -> Iterator[None]:
    """trainer.tf32 for CUDA matmuls and cuDNN convolutions while the run lasts."""
    # torch >= 2.9 has per-backend fp32_precision ("tf32"/"ieee"); mixing it with the legacy
    # allow_tf32 flags is an error there, so use the new one where it exists
    targets = [torch.backends.cuda.matmul, getattr(torch.backends.cudnn, "conv", None)]
    if all(hasattr(t, "fp32_precision") for t in targets):
        attr, value = "fp32_precision", "tf32" if cfg.trainer.tf32 else "ieee"
    else:
        targets, attr, value = [torch.backends.cuda.matmul, torch.backends.cudnn], "allow_tf32", cfg.trainer.tf32
    before = [getattr(t, attr) for t in targets]
    for t in targets:
        setattr(t, attr, value)
    try:
        yield
    finally:
        for t, v in zip(targets, before):
            setattr(t, attr, v)
