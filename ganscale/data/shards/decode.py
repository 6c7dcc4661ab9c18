"""Decode one raw shard sample into arrays: image (uint8 H x W x C), label, caption, embedding.

Runs inside DataLoader workers. All randomness (random crop, flip, caption choice) comes from the
numpy Generator passed in, which the stream seeds per batch, so a resumed run decodes the same
crops and flips as an uninterrupted one.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image

from ganscale.data.shards.config import ShardsConfig
from ganscale.data.shards.manifest import IMAGE_EXTS, TOKENS_KEY, Manifest
from ganscale.errors import UserError
from ganscale.text.vocab import Vocab


def sample_captions(sample: dict) -> list[str]:
    """Every caption of a raw sample: json "captions" (ganscale), json "caption" (img2dataset), else
    the non-empty lines of txt; [] when there are none."""
    caps = None
    if "json" in sample:
        try:
            meta = json.loads(sample["json"])
        except ValueError:
            meta = None
        if isinstance(meta, dict):
            caps = meta.get("captions") or meta.get("caption")
        if isinstance(caps, str):
            caps = [caps]
        if not isinstance(caps, list):
            caps = None
    if not caps and "txt" in sample:
        caps = [c for c in sample["txt"].decode("utf-8", errors="replace").split("\n") if c]
    return [str(c) for c in caps or []]


def encode_captions(vocab: Vocab, caps: list[str], rows: int, max_words: int) -> dict:
    """Token ids [rows, max_words] (padding 0), lengths [rows] (0 for padding rows) and the count."""
    ids = np.zeros((rows, max_words), np.int64)
    lengths = np.zeros(rows, np.int64)
    for j, c in enumerate(caps[:rows]):
        row, lengths[j] = vocab.encode(c, max_words)
        ids[j] = row
    return {"caption_ids": ids, "caption_lengths": lengths, "caption_count": min(len(caps), rows)}


class CorruptSample(Exception):
    """A sample that cannot be used (bad image bytes, missing key); the stream skips and counts it."""


def _resized_size(w: int, h: int, side: int) -> tuple[int, int]:
    s = side / min(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


@dataclass(frozen=True)
class Decoder:
    mode: str
    """PIL mode to decode to: L or RGB."""
    height: int
    width: int
    """Output size every sample must have (checked per sample)."""
    resize: int = 0
    crop: str = "none"
    crop_size: int = 0
    flip: bool = False
    draft: bool = True
    labels: bool = False
    num_classes: int = 0
    captions: bool = False
    caption: str = "random"
    text_emb_dim: int = 0
    max_captions: int = 0
    """Caption rows per sample in the batch (the manifest's most captions); extra captions are cut."""
    vocab: Optional[Vocab] = None
    """Word vocabulary: with it every caption is also yielded as token ids."""
    max_words: int = 18

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1 if self.mode == "L" else 3, self.height, self.width)

    @classmethod
    def build(cls, cfg: ShardsConfig, m: Manifest, vocab: Optional[Vocab] = None) -> "Decoder":
        """The decoder for these shards; UserError when the output shape cannot be fixed."""
        t = cfg.transform
        mode = {0: m.mode, 1: "L", 3: "RGB"}[cfg.channels]
        if t.crop != "none":
            side = t.crop_size or t.resize or (min(m.width, m.height) if m.width else 0)
            if not side:
                raise UserError("the shards hold images of mixed sizes; set data.shards.transform.crop_size "
                                "(or transform.resize) so every sample gets the same shape")
            if m.width:
                w, h = _resized_size(m.width, m.height, t.resize) if t.resize else (m.width, m.height)
                if side > min(w, h):
                    raise UserError(f"crop_size {side} is larger than the images ({w}x{h} after resize); "
                                    "lower data.shards.transform.crop_size or raise transform.resize")
            height = width = side
        elif m.width:
            width, height = _resized_size(m.width, m.height, t.resize) if t.resize else (m.width, m.height)
        else:
            raise UserError("the shards hold images of mixed sizes (manifest has no fixed size); set "
                            "data.shards.transform.crop=center (or random) with transform.resize / crop_size")
        return cls(mode=mode, height=height, width=width, resize=t.resize, crop=t.crop,
                   crop_size=height if t.crop != "none" else 0, flip=t.flip, draft=cfg.draft,
                   labels=cfg.labels and m.num_classes > 0, num_classes=m.num_classes,
                   captions=cfg.text and m.captions, caption=cfg.caption,
                   text_emb_dim=m.text_emb_dim if cfg.text else 0, max_captions=max(1, m.max_captions),
                   vocab=vocab if cfg.text else None, max_words=cfg.max_words)

    def for_eval(self) -> "Decoder":
        """Deterministic variant: centre crop, no flip (real images for plots and metrics)."""
        from dataclasses import replace

        return replace(self, crop="center" if self.crop == "random" else self.crop, flip=False)

    # ------------------------------------------------------------------ image
    def _image(self, data: bytes, g: np.random.Generator) -> np.ndarray:
        img = Image.open(io.BytesIO(data))
        if self.resize and self.draft and img.format == "JPEG":
            # DCT-domain downscale to the smallest size still >= the resize target
            img.draft(self.mode, _resized_size(*img.size, self.resize))
        img.load()  # decodes; corrupt bytes raise here
        if img.mode != self.mode:
            img = img.convert(self.mode)
        if self.resize:
            size = _resized_size(*img.size, self.resize)
            if size != img.size:
                # reducing_gap: a fast integer box reduction first when shrinking a lot (Pillow's
                # docs: indistinguishable from full resampling at 3)
                img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
        if self.crop != "none":
            w, h, c = img.size[0], img.size[1], self.crop_size
            if w < c or h < c:
                raise CorruptSample(f"image {w}x{h} is smaller than the {c}x{c} crop")
            if self.crop == "random":
                left, top = int(g.integers(w - c + 1)), int(g.integers(h - c + 1))
            else:
                left, top = (w - c) // 2, (h - c) // 2
            img = img.crop((left, top, left + c, top + c))
        arr = np.asarray(img)
        if arr.shape[0] != self.height or arr.shape[1] != self.width:
            raise CorruptSample(f"image is {arr.shape[1]}x{arr.shape[0]}, the others are {self.width}x{self.height} "
                                "(set data.shards.transform.crop)")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if self.flip and g.random() < 0.5:
            arr = arr[:, ::-1]
        return arr

    # ------------------------------------------------------------------ sample
    def __call__(self, sample: dict, g: np.random.Generator) -> dict:
        key = next((k for k in IMAGE_EXTS if k in sample), None)
        if key is None:
            raise CorruptSample(f"missing image key (has {', '.join(k for k in sample if not k.startswith('__'))})")
        try:
            out = {"x": self._image(sample[key], g)}
        except CorruptSample:
            raise
        except Exception as e:  # PIL raises many types on corrupt data
            raise CorruptSample(f"cannot decode .{key} ({type(e).__name__}: {e})") from None
        if self.labels:
            if "cls" not in sample:
                raise CorruptSample("missing key cls (label)")
            try:
                y = int(sample["cls"])
            except ValueError:
                raise CorruptSample(f"cls {sample['cls'][:20]!r} is not an integer") from None
            if not 0 <= y < self.num_classes:
                raise CorruptSample(f"label {y} outside 0..{self.num_classes - 1}")
            out["y"] = y
        if self.captions:
            caps = self._captions(sample)[: self.max_captions]
            i = int(g.integers(len(caps))) if self.caption == "random" else 0
            out["text"] = caps[i]
            out["captions"] = caps
            if self.vocab is not None:
                out.update(encode_captions(self.vocab, caps, self.max_captions, self.max_words))
            if self.text_emb_dim:
                emb = self._embeddings(sample)
                if emb.ndim == 2 and len(emb) < len(caps):
                    raise CorruptSample(f"emb.npy has {len(emb)} rows for {len(caps)} captions")
                out["text_emb"] = emb[i] if emb.ndim == 2 else emb
                if emb.ndim == 2:  # one row per caption, padded like the ids
                    rows = np.zeros((self.max_captions, self.text_emb_dim), np.float32)
                    rows[: len(caps)] = emb[: len(caps)]
                    out["caption_emb"] = rows
        return out

    def _captions(self, sample: dict) -> list[str]:
        caps = sample_captions(sample)
        if not caps:
            raise CorruptSample("missing captions (json captions / txt)")
        return caps

    def _embeddings(self, sample: dict) -> np.ndarray:
        """emb.npy as float32: [E] (one vector) or [C, E] (one row per caption, cut like the captions)."""
        if "emb.npy" not in sample:
            raise CorruptSample("missing key emb.npy (text embedding)")
        try:
            emb = np.load(io.BytesIO(sample["emb.npy"]), allow_pickle=False)
        except Exception as e:
            raise CorruptSample(f"cannot read emb.npy ({e})") from None
        if emb.shape[-1:] != (self.text_emb_dim,) or emb.ndim not in (1, 2):
            raise CorruptSample(f"text embedding has shape {emb.shape}, expected ({self.text_emb_dim},) "
                                f"or (captions, {self.text_emb_dim})")
        return emb.astype(np.float32, copy=False)[: self.max_captions]


@dataclass(frozen=True)
class TokenDecoder:
    """Decodes the `tokens.npy` of a token shard (`ganscale data synth oracle-sequences`) into
    {"x": int64 [length]}; anything else (pickled objects included: allow_pickle=False) is a
    CorruptSample that the stream skips and counts."""

    length: int
    vocab: int

    @property
    def shape(self) -> tuple[int]:
        return (self.length,)

    def for_eval(self) -> "TokenDecoder":
        return self  # no random transforms

    def __call__(self, sample: dict, g: np.random.Generator) -> dict:
        if TOKENS_KEY not in sample:
            raise CorruptSample(f"missing key {TOKENS_KEY} (has {', '.join(k for k in sample if not k.startswith('__'))})")
        try:
            arr = np.load(io.BytesIO(sample[TOKENS_KEY]), allow_pickle=False)
        except Exception as e:
            raise CorruptSample(f"cannot read {TOKENS_KEY} ({type(e).__name__}: {e})") from None
        if arr.shape != (self.length,) or arr.dtype.kind not in "iu":
            raise CorruptSample(f"{TOKENS_KEY} is {arr.dtype} {arr.shape}, expected integers of shape ({self.length},)")
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab):
            raise CorruptSample(f"token ids outside 0..{self.vocab - 1}")
        return {"x": arr.astype(np.int64)}
