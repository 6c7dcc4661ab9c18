"""Base classes fixing the interface every G and D family implements."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn


def truncated_normal(shape, threshold: float, generator=None, device=None) -> Tensor:
    """Standard normal samples with every |value| > threshold redrawn (BigGAN's truncation trick)."""
    z = torch.randn(shape, generator=generator, device=device)
    if threshold <= 0:
        raise ValueError(f"truncation threshold must be > 0, got {threshold}")
    bad = z.abs() > threshold
    while bad.any():
        z[bad] = torch.randn(int(bad.sum()), generator=generator, device=device)
        bad = z.abs() > threshold
    return z


class Generator(nn.Module):
    """G(z, y=None) -> x. `num_classes` = 0 means unconditional."""

    z_dim: int
    num_classes: int = 0

    def sample_z(
        self,
        n: int,
        generator: Optional[torch.Generator] = None,
        device=None,
        truncation: Optional[float] = None,
    ) -> Tensor:
        if truncation is None:
            return torch.randn(n, self.z_dim, generator=generator, device=device)
        return truncated_normal((n, self.z_dim), truncation, generator=generator, device=device)


class Discriminator(nn.Module):
    """D(x, y=None, return_features=False) -> logits [N] or (logits, features [N, F]).

    The features are the last hidden representation, used by feature matching."""

    num_classes: int = 0
