"""Row operations that work on every condition kind (None, Tensor, TextCondition)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from ganscale.conditions.text import TextCondition

Cond = Optional[Any]  # None | Tensor | TextCondition


def cond_len(c: Cond) -> Optional[int]:
    return None if c is None else len(c)


def cond_index(c: Cond, idx) -> Cond:
    """Rows `idx` (slice, index tensor) of a condition batch; None stays None."""
    return None if c is None else c[idx]


def cond_cat(items: Sequence[Cond]) -> Cond:
    if not items or items[0] is None:
        return None
    if isinstance(items[0], TextCondition):
        return TextCondition.cat(items)
    return torch.cat(list(items))


def cond_to(c: Cond, device) -> Cond:
    if c is None:
        return None
    if isinstance(c, (Tensor, TextCondition)):
        return c.to(device)
    raise TypeError(f"not a condition batch: {type(c).__name__}")
