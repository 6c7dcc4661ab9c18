"""AttnGAN's word attention (Xu et al. 2018) as a stage inside a text-to-image generator.

A sentence vector says what the caption says all at once; with several objects the generator has
to untangle which attribute belongs where. AttnGAN lets every pixel of G's features pick the words
it draws: the word features are projected to the feature width (a 1x1 conv, `GlobalAttentionGeneral`'s
`conv_context`), each pixel scores every real token by a dot product, a softmax over the tokens
weights the projected words, and the weighted sum (the word context) joins the features before two
residual blocks (AttnGAN's `NEXT_STAGE_G`). The word features are the text encoder's bidirectional
LSTM outputs, so a word carries its context ("7" in "a red 7 in the top left" knows its colour
and place).

    model.arch=stackgan model.stackgan.word_attention=32    # Stage-I's 32x32 features attend over the words
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganscale.conditions import TextCondition
from ganscale.errors import UserError
from ganscale.nets.text2img.common import ResBlock


class WordAttention(nn.Module):
    """h [N, C, H, W], words [N, T, E], mask [N, T] -> (context [N, C, H, W], attention [N, T, H*W])."""

    def __init__(self, ch: int, word_dim: int):
        super().__init__()
        self.word_dim = word_dim
        self.proj = nn.Linear(word_dim, ch, bias=False)

    def forward(self, h: Tensor, words: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        w = self.proj(words)                                           # [N, T, C]
        scores = torch.bmm(w, h.flatten(2))                            # [N, T, HW]
        scores = scores.masked_fill(~mask[:, :, None], float("-inf"))  # padding is never attended
        attn = scores.softmax(dim=1)
        return torch.bmm(w.transpose(1, 2), attn).view_as(h), attn


class AttentionStage(nn.Module):
    """[h, word context] -> two residual blocks of 2C channels -> 3x3 conv back to C (BN, ReLU)."""

    def __init__(self, ch: int, word_dim: int):
        super().__init__()
        self.att = WordAttention(ch, word_dim)
        self.body = nn.Sequential(ResBlock(2 * ch), ResBlock(2 * ch), nn.Conv2d(2 * ch, ch, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(ch), nn.ReLU(True))

    def forward(self, h: Tensor, c) -> Tensor:
        if not isinstance(c, TextCondition) or c.words is None or c.mask is None:
            raise UserError("word_attention needs the caption's word features: train with a text encoder "
                            "(game.text.encoder), not precomputed sentence embeddings, or set word_attention=0")
        if c.words.shape[-1] != self.att.word_dim:
            raise UserError(f"the text encoder's word features have {c.words.shape[-1]} dimensions, the model "
                            f"expects {self.att.word_dim}; set the model's text_dim to the encoder's dim")
        ctx, _ = self.att(h, c.words.to(h.dtype), c.mask)
        return self.body(torch.cat([h, ctx], 1))
