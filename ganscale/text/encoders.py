"""Text and image encoders of the DAMSM (AttnGAN, Xu et al. 2018), and precomputed embeddings.

A text encoder turns a batch into a `TextCondition` through one method, `condition(batch)`:

- `RNNTextEncoder`: a bidirectional LSTM over word embeddings. Reads `batch["caption_ids"]`
  [N, T] (long, 0 = padding) and `batch["caption_lengths"]` [N]; gives word features [N, T, E]
  (both directions concatenated), the sentence vector [N, E] (the last hidden state of each
  direction, concatenated) and the mask [N, T] of real tokens.
- `PrecomputedText`: CLIP / T5 / any embedding stored in the shards. Reads
  `batch["caption_emb"]` [N, E] and gives a sentence-only `TextCondition`.

`CNNImageEncoder` is a small CNN trained from scratch (no downloaded Inception): region features
[N, E, R, R] (R = image_size / 8) and a global vector [N, E], in the same space as the text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ganscale.conditions import TextCondition
from ganscale.errors import UserError


def _need(batch: dict, *keys: str) -> list:
    missing = [k for k in keys if k not in batch]
    if missing:
        raise UserError(f"the batch has no {', '.join(missing)} (has {', '.join(sorted(batch))}); "
                        "the text encoder needs captions as token ids (caption_ids, caption_lengths) "
                        "or precomputed embeddings (caption_emb, with text.kind=precomputed)")
    return [batch[k] for k in keys]


class RNNTextEncoder(nn.Module):
    def __init__(self, vocab_size: int, word_dim: int = 300, hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        if hidden % 2:
            raise ValueError(f"hidden={hidden} must be even (two directions of hidden/2 units)")
        self.dim = hidden
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        self.rnn = nn.LSTM(word_dim, hidden // 2, batch_first=True, bidirectional=True)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)  # AttnGAN's init of the word embeddings

    def forward(self, ids: Tensor, lengths: Tensor) -> TextCondition:
        T = ids.shape[1]
        lengths = lengths.clamp(1, T)
        packed = pack_padded_sequence(self.drop(self.embed(ids)), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, (h, _) = self.rnn(packed)
        words = pad_packed_sequence(out, batch_first=True, total_length=T)[0]  # [N, T, hidden]
        sentence = torch.cat([h[0], h[1]], dim=1)  # forward and backward final states
        mask = torch.arange(T, device=ids.device)[None] < lengths.to(ids.device)[:, None]
        return TextCondition(sentence=sentence, words=words, mask=mask)

    def condition(self, batch: dict) -> TextCondition:
        ids, lengths = _need(batch, "caption_ids", "caption_lengths")
        return self(ids, lengths)


class PrecomputedText(nn.Module):
    """Embeddings computed before training (`ganscale data embed`, CLIP, T5) as a TextCondition."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, emb: Tensor) -> TextCondition:
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise UserError(f"caption_emb has shape {tuple(emb.shape)}, expected [N, {self.dim}]; "
                            "the shards' text_emb_dim must match the model's text dimension")
        return TextCondition(sentence=emb.float())

    def condition(self, batch: dict) -> TextCondition:
        (emb,) = _need(batch, "caption_emb")
        return self(emb)


class CNNImageEncoder(nn.Module):
    """Images in [-1, 1] at `image_size` -> (regions [N, E, s/8, s/8], global [N, E])."""

    def __init__(self, dim: int = 256, ch: int = 32, image_size: int = 64, in_ch: int = 3):
        super().__init__()
        if image_size % 16 or image_size < 32:
            raise ValueError(f"image_size={image_size} must be a multiple of 16, at least 32")
        self.dim, self.image_size = dim, image_size

        def down(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 4, 2, 1), nn.GroupNorm(min(8, b), b), nn.LeakyReLU(0.2))

        self.trunk = nn.Sequential(nn.Conv2d(in_ch, ch, 3, 1, 1), nn.LeakyReLU(0.2),
                                   down(ch, ch), down(ch, 2 * ch), down(2 * ch, 4 * ch))  # s/8
        self.regions = nn.Conv2d(4 * ch, dim, 1)
        self.deeper = nn.Sequential(down(4 * ch, 8 * ch), nn.Conv2d(8 * ch, 8 * ch, 3, 1, 1), nn.LeakyReLU(0.2))
        self.glob = nn.Linear(8 * ch, dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        h = self.trunk(x)
        return self.regions(h), self.glob(self.deeper(h).mean(dim=(2, 3)))
