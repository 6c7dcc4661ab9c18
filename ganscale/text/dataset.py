"""Captioned images from packed shards, held in memory, for training the text encoder.

The batch contract of `ganscale text train` (until the streamed caption fields of the shard data
module carry every caption of each image, this is what the trainer reads):

    images           uint8 [N, 3, S, S]   resized to the encoder's image_size
    caption_ids      long  [N, T]          one caption per image, drawn from the seeded generator;
                                           token ids of the shards' vocab.json, 0 = padding
    caption_lengths  long  [N]             real tokens per caption (>= 1)
    groups           long  [N]             class label, or the sample's index when unlabeled: captions
                                           of the same group are never used as mismatches

The shard folder holds manifest.json, vocab.json (a ganscale vocabulary) and samples with an image
(png / jpg), a `.json` whose "captions" lists the captions (or a `.txt`, one per line) and
optionally `.cls`.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ganscale.data.captions import draw_captions
from ganscale.data.shards.manifest import IMAGE_EXTS, MANIFEST_NAME, Manifest
from ganscale.data.shards.stream import DataStats, read_shard
from ganscale.errors import UserError
from ganscale.text.vocab import Vocab

VOCAB_NAME = "vocab.json"


def _captions(sample: dict) -> list[str]:
    if "json" in sample:
        try:
            caps = json.loads(sample["json"]).get("captions")
        except (ValueError, AttributeError):
            caps = None
        if caps:
            return [str(c) for c in caps]
    if "txt" in sample:
        return [c for c in sample["txt"].decode("utf-8", errors="replace").split("\n") if c.strip()]
    return []


def _image(data: bytes, size: int) -> np.ndarray:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    if w != h:  # centre square
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img).transpose(2, 0, 1)


@dataclass
class CaptionedImages:
    images: Tensor
    """uint8 [M, 3, S, S]."""
    ids: Tensor
    """long [M, C, T]: up to C captions per image (rows past `counts` are padding)."""
    lengths: Tensor
    """long [M, C]."""
    counts: Tensor
    """long [M]: captions per image."""
    groups: Tensor
    """long [M]: the class label, or a unique id per unlabeled image."""
    vocab: Vocab

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def load(cls, folder: str, image_size: int, max_len: int, vocab: Vocab | None = None) -> "CaptionedImages":
        manifest = Manifest.load(os.path.join(folder, MANIFEST_NAME))
        if vocab is None:
            vocab = Vocab.load(os.path.join(folder, VOCAB_NAME))
        stats = DataStats(0, 0)
        images, caps, labels, problems = [], [], [], []
        for entry in manifest.shards:
            for s in read_shard(os.path.join(folder, entry.name), stats):
                key = next((k for k in IMAGE_EXTS if k in s), None)
                c = _captions(s)
                if key is None or not c:
                    problems.append(f"{s.get('__key__')}: no {'image' if key is None else 'captions'}")
                    continue
                try:
                    images.append(_image(s[key], image_size))
                except Exception as e:  # PIL raises many types on corrupt bytes
                    problems.append(f"{s.get('__key__')}: cannot decode .{key} ({type(e).__name__})")
                    continue
                caps.append(c)
                labels.append(int(s["cls"]) if "cls" in s else -1)
        if not images:
            first = problems[0] if problems else "no samples"
            raise UserError(f"{folder}: no captioned images could be read ({first}); pack image-caption data "
                            "with `ganscale data pack` (a JSONL manifest or a captioned layout)")
        if stats.shards or problems:
            print(f"ganscale text: skipped {len(problems)} samples and {stats.shards} unreadable shards in {folder}")
        C = max(len(c) for c in caps)
        ids = torch.zeros(len(caps), C, max_len, dtype=torch.long)
        lengths = torch.ones(len(caps), C, dtype=torch.long)
        for i, cs in enumerate(caps):
            for j, text in enumerate(cs):
                t, n = vocab.encode(text, max_len)
                ids[i, j], lengths[i, j] = torch.tensor(t), n
        lab = torch.tensor(labels)
        # unlabeled images are their own group (ids after every class label)
        groups = torch.where(lab >= 0, lab, lab.max().clamp(min=0) + 1 + torch.arange(len(lab)))
        return cls(torch.from_numpy(np.stack(images)), ids, lengths,
                   torch.tensor([len(c) for c in caps]), groups, vocab)

    def subset(self, idx: Tensor) -> "CaptionedImages":
        return CaptionedImages(self.images[idx], self.ids[idx], self.lengths[idx], self.counts[idx],
                               self.groups[idx], self.vocab)

    def batch(self, idx: Tensor, generator: torch.Generator) -> dict:
        """Images `idx` with one caption each, drawn uniformly among the image's captions."""
        ids, lengths = draw_captions(self.ids[idx], self.lengths[idx], self.counts[idx], generator)
        return {"images": self.images[idx], "caption_ids": ids, "caption_lengths": lengths,
                "groups": self.groups[idx]}
