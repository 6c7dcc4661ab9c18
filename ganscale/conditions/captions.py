"""One caption per image, chosen from uniforms the engine draws for the global batch (the text
condition kind and the data layer's draw_captions both use these, so the choice is made once)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def uniform_draws(n: int, generator: Optional[torch.Generator] = None, device=None) -> Tensor:
    """The n float64 uniforms that `caption_index` turns into caption choices (the engine draws them
    for the global batch and gives each rank its rows, so N ranks pick what one process picks)."""
    return torch.rand(n, generator=generator, device=device, dtype=torch.float64)


def caption_index(u: Tensor, counts: Tensor) -> Tensor:
    """Caption choices from uniforms u in [0, 1) [N]: floor(u * counts[i]) (long [N], on counts' device)."""
    if len(counts) and int(counts.min()) < 1:
        raise ValueError("every image needs at least one caption (a count of 0 was given)")
    # floor(u * count) < count since u < 1; float64 is exact for any realistic caption count
    return (u.to(counts.device, torch.float64) * counts.to(torch.float64)).floor().long().clamp_max_(counts - 1)
