"""A batch of text conditions: what a text encoder gives G and D (StackGAN, AttnGAN, DF-GAN)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Sequence

import torch
from torch import Tensor


@dataclass
class TextCondition:
    sentence: Tensor
    """Sentence vectors [N, E] (float)."""
    words: Optional[Tensor] = None
    """Word features [N, T, E_w] for attention models, or None."""
    mask: Optional[Tensor] = None
    """[N, T] bool, True where `words` holds a real token (not padding), or None."""

    def __post_init__(self) -> None:
        n = self.sentence.shape[0]
        for f in ("words", "mask"):
            t = getattr(self, f)
            if t is not None and t.shape[0] != n:
                raise ValueError(f"TextCondition.{f} has {t.shape[0]} rows, sentence has {n}")

    def __len__(self) -> int:
        return self.sentence.shape[0]

    def _map(self, fn) -> "TextCondition":
        return TextCondition(**{f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name))
                                for f in fields(self)})

    def __getitem__(self, idx) -> "TextCondition":
        """Rows `idx` (a slice, an index tensor or a list) of every field."""
        return self._map(lambda t: t[idx])

    def to(self, *args, **kwargs) -> "TextCondition":
        return self._map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> "TextCondition":
        return self._map(lambda t: t.detach())

    @staticmethod
    def cat(items: Sequence["TextCondition"]) -> "TextCondition":
        first = items[0]
        return TextCondition(**{f.name: None if getattr(first, f.name) is None
                                else torch.cat([getattr(i, f.name) for i in items])
                                for f in fields(first)})
