"""Draw one caption per image from the batch's caption table (the engine calls it once per phase).

    ids, lengths = draw_captions(batch["caption_ids"], batch["caption_lengths"], batch["caption_counts"], g)

A shard batch carries every caption of each image: ids [N, C, T], lengths [N, C] and counts [N]
(rows j >= counts[i] are padding). Drawing here, from the engine's seeded per-(iteration, phase)
generator, rather than in the data workers, keeps the caption choice part of the training step:
the same seed gives the same captions on any number of workers and after a resume.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ganscale.conditions.captions import caption_index, uniform_draws  # noqa: F401  (one caption draw)


def draw_caption_index(counts: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """For each image i, an index uniform in 0..counts[i]-1 (long [N], on counts' device)."""
    if counts.ndim != 1:
        raise ValueError(f"counts must be [N], got shape {tuple(counts.shape)}")
    if len(counts) and int(counts.min()) < 1:
        raise ValueError("every image needs at least one caption (a count of 0 was given)")
    device = generator.device if generator is not None else counts.device
    return caption_index(uniform_draws(len(counts), generator, device), counts)


def draw_captions(ids: Tensor, lengths: Tensor, counts: Tensor,
                  generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """One caption per image: ids [N, C, T], lengths [N, C], counts [N] -> (ids [N, T], lengths [N])."""
    if ids.ndim != 3 or lengths.shape != ids.shape[:2] or counts.shape != ids.shape[:1]:
        raise ValueError(f"expected ids [N, C, T], lengths [N, C], counts [N]; got {tuple(ids.shape)}, "
                         f"{tuple(lengths.shape)}, {tuple(counts.shape)}")
    j = draw_caption_index(counts, generator)
    rows = torch.arange(ids.shape[0], device=ids.device)
    return ids[rows, j], lengths[rows, j]
