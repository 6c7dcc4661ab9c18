"""Typed config of the shard stream (`data.shards.*`, used when data.kind=shards)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ganscale.config.schema import RunConfig

CROPS = ("none", "center", "random")
CAPTION_CHOICES = ("random", "first")
START_METHODS = ("fork", "spawn", "forkserver")
FORMATS = ("auto", "ganscale", "img2dataset")


@dataclass
class TransformConfig:
    """Per-sample image transforms, applied after decoding (in DataLoader workers)."""

    resize: int = 0
    """Resize so the shorter side is this many pixels (0 = keep the stored size)."""
    crop: str = "none"
    """none, center or random: cut a crop_size x crop_size square after the resize."""
    crop_size: int = 0
    """Side of the square crop; 0 = the resize value (or the shorter stored side)."""
    flip: bool = False
    """Random horizontal flip with probability 1/2 (training only)."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.crop not in CROPS:
            out.append(f"crop={self.crop!r} unknown; choose one of: {', '.join(CROPS)}")
        if self.resize < 0 or self.crop_size < 0:
            out.append("resize and crop_size must be >= 0")
        if self.crop != "none" and self.resize and self.crop_size > self.resize:
            out.append(f"crop_size={self.crop_size} is larger than resize={self.resize} (the shorter side); "
                       "lower crop_size or raise resize")
        return out


@dataclass
class ShardsConfig:
    """WebDataset tar shards made by `ganscale data pack`, streamed to every rank and worker."""

    urls: Any = ""
    """Shard spec: a folder holding manifest.json and its shards, a tar path, brace notation
    (`/data/in64/data-{000000..000127}.tar`), a `pipe:` command (`pipe:aws s3 cp s3://b/data-{000000..000127}.tar -`),
    or a list of these; `::` also separates specs. Empty = the shards listed in `manifest`."""
    manifest: str = ""
    """manifest.json of the shards (local path or URL); default: manifest.json next to the first shard."""
    resampled: bool = True
    """Training draws shards with replacement from seeds (seed, epoch, rank, worker). false: each epoch
    splits a seeded shard permutation across ranks x workers (disjoint), topped up when a rank runs short."""
    shuffle_buffer: int = 2000
    """Samples shuffled together: whole shards are read into a block of about this many samples, which is
    permuted (seeded). 0 = stream order, no shuffling at all."""
    epoch_samples: int = 0
    """Samples per epoch over all ranks (sets the epoch length, hence reseeding); 0 = the manifest's count."""
    channels: int = 0
    """Decode to 1 (L) or 3 (RGB) channels; 0 = as packed (manifest mode)."""
    draft: bool = True
    """JPEG: let the decoder scale down by 1/2, 1/4 or 1/8 in the DCT when the resize target allows
    (much faster for large photos, nearly identical pixels)."""
    labels: bool = True
    """Yield class labels "y" (class-conditional training) when the shards have classes."""
    caption: str = "random"
    """Which caption of several to yield as "text": random (seeded per sample) or first."""
    text: bool = True
    """Yield "text" (and "text_emb" when the shards carry embeddings) when the shards have captions, and
    every caption of each image: "captions" (lists of strings), and with a vocabulary "caption_ids"
    [N, C, T], "caption_lengths" [N, C], "caption_counts" [N] (see ganscale.data.captions)."""
    format: str = "auto"
    """ganscale (shards + manifest.json from `ganscale data pack`), img2dataset (tar shards of
    {key}.jpg/.txt/.json without a manifest, streamed as they are) or auto (img2dataset when no
    manifest.json is found)."""
    vocab: str = ""
    """Word vocabulary (vocab.json) for caption_ids; default: the one `data pack` wrote beside the manifest."""
    max_words: int = 18
    """Tokens per caption in caption_ids (AttnGAN's 18); longer captions are cut."""
    start_method: str = "fork"
    """How DataLoader workers start: fork, spawn or forkserver."""
    prefetch_factor: int = 2
    """Batches each worker prepares ahead."""
    probe: bool = True
    """At start-up, open the first shard and check it is a tar (a wrong path or URL fails at once)."""
    transform: TransformConfig = field(default_factory=TransformConfig)
    """Resize, crop and flip."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        specs = [self.urls] if isinstance(self.urls, str) else self.urls
        if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
            out.append(f"urls={self.urls!r} must be a string or a list of strings "
                       "(paths, brace patterns, pipe: commands)")
        elif root.data.kind == "shards" and not any(s.strip() for s in specs) and not self.manifest:
            out.append("data.kind=shards needs data.shards.urls=FOLDER_OR_SPEC (or data.shards.manifest=PATH); "
                       "make shards with `ganscale data pack SRC OUT`")
        if self.shuffle_buffer < 0 or self.epoch_samples < 0:
            out.append("shuffle_buffer and epoch_samples must be >= 0")
        if self.channels not in (0, 1, 3):
            out.append(f"channels={self.channels} must be 0 (as packed), 1 or 3")
        if self.caption not in CAPTION_CHOICES:
            out.append(f"caption={self.caption!r} unknown; choose one of: {', '.join(CAPTION_CHOICES)}")
        if self.start_method not in START_METHODS:
            out.append(f"start_method={self.start_method!r} unknown; choose one of: {', '.join(START_METHODS)}")
        if self.format not in FORMATS:
            out.append(f"format={self.format!r} unknown; choose one of: {', '.join(FORMATS)}")
        if self.max_words < 1:
            out.append(f"max_words={self.max_words} must be >= 1")
        if self.prefetch_factor < 1:
            out.append(f"prefetch_factor={self.prefetch_factor} must be >= 1")
        return out
