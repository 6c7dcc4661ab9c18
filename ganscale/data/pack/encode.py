"""Turn one `Item` into the bytes of one shard sample (runs in pack worker processes).

Sample layout (webdataset: files `<key>.<ext>` grouped by key):
    <key>.png | .jpg | .webp   the image
    <key>.cls                  the class index as text (labeled data only)
    <key>.txt                  the captions, one per line (caption data only)
    <key>.emb.npy              float32 text embeddings, one row per caption or one vector
    <key>.json                 {"source", "label", "class", "captions", "width", "height", ...Item.meta}
                               (image files and captions only; IDX samples carry just png + cls)
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image

from ganscale.data.pack.sources import Item

PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
KEEP_BYTES = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class EncodeOptions:
    image_format: str = "keep"
    """keep (original bytes when nothing is resized, else the source's codec), png, jpg or webp."""
    quality: int = 95
    """JPEG / WebP quality when encoding."""
    resize: int = 0
    """Resize so the shorter side is this many pixels (0 = keep the size)."""
    square: bool = False
    """Centre-crop to a square (after the resize)."""


@dataclass
class Prepared:
    index: int
    source: str
    sample: Optional[dict] = None
    error: Optional[str] = None
    size: tuple[int, int] = (0, 0)
    """(width, height) as stored."""
    mode: str = "RGB"
    ext: str = ""
    emb_dim: int = 0
    captions: tuple[str, ...] = ()


def resize_shorter(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    s = side / min(w, h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)


def center_square(img: Image.Image) -> Image.Image:
    w, h = img.size
    c = min(w, h)
    left, top = (w - c) // 2, (h - c) // 2
    return img.crop((left, top, left + c, top + c))


def _load(item: Item) -> tuple[Image.Image, Optional[bytes]]:
    if item.pixels is not None:
        pixels = item.pixels() if callable(item.pixels) else item.pixels
        return Image.fromarray(np.ascontiguousarray(pixels), mode=None), None
    with open(item.path, "rb") as f:
        raw = f.read()
    img = Image.open(io.BytesIO(raw))
    img.load()  # decode fully: truncated and corrupt files fail here, not in training
    return img, raw


def _text_emb(item: Item) -> Optional[np.ndarray]:
    if item.text_emb is None:
        return None
    emb = np.load(item.text_emb) if isinstance(item.text_emb, str) else np.asarray(item.text_emb)
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim == 2 and emb.shape[0] != len(item.captions):
        raise ValueError(f"text_emb has {emb.shape[0]} rows for {len(item.captions)} captions")
    if emb.ndim not in (1, 2):
        raise ValueError(f"text_emb must be a vector or one row per caption, got shape {emb.shape}")
    return emb


def prepare(job: tuple[int, str, Item], opts: EncodeOptions, classes: tuple[str, ...] = ()) -> Prepared:
    """Load, optionally resize, encode. Never raises on bad input: returns Prepared.error."""
    index, key, item = job
    out = Prepared(index, item.source)
    try:
        img, raw = _load(item)
    except FileNotFoundError:
        out.error = f"{item.source}: missing file {item.path}"
        return out
    except Exception as e:  # PIL raises many types on corrupt data
        out.error = f"{item.source}: unreadable image ({type(e).__name__}: {e})"
        return out
    try:
        emb = _text_emb(item)
    except Exception as e:
        out.error = f"{item.source}: bad text_emb ({e})"
        return out
    src_format = img.format
    mode = "L" if img.mode in GRAY_MODES else "RGB"
    changed = False
    if (opts.resize or opts.square or opts.image_format != "keep" or raw is None or src_format not in KEEP_BYTES
            or item.bbox is not None):
        img = img.convert(mode)
    if item.bbox is not None:  # StackGAN's bird crop, before any resize
        from ganscale.data.pack.captioned import stackgan_crop

        img, changed = img.crop(stackgan_crop(*img.size, item.bbox)), True
    if opts.resize:
        new = resize_shorter(img, opts.resize)
        changed |= new is not img
        img = new
    if opts.square and img.size[0] != img.size[1]:
        img, changed = center_square(img), True
    if opts.image_format == "keep" and raw is not None and src_format in KEEP_BYTES and not changed:
        ext, data = KEEP_BYTES[src_format], raw  # the original bytes: no recompression
    else:
        ext = opts.image_format if opts.image_format != "keep" else ("jpg" if src_format == "JPEG" else "png")
        buf = io.BytesIO()
        kw = {"quality": opts.quality} if ext in ("jpg", "webp") else {"optimize": False}
        img.save(buf, format=PIL_FORMATS[ext], **kw)
        data = buf.getvalue()
    out.size, out.mode, out.ext = img.size, mode, ext
    meta = {"source": item.source, "width": img.size[0], "height": img.size[1], **item.meta}
    sample = {"__key__": key, ext: data}
    if item.label >= 0:
        sample["cls"] = str(item.label).encode()
        meta["label"] = item.label
        if classes:
            meta["class"] = classes[item.label]
    if item.captions:
        out.captions = tuple(item.captions)
        sample["txt"] = "\n".join(c.replace("\n", " ") for c in item.captions).encode()
        meta["captions"] = item.captions
    if emb is not None:
        buf = io.BytesIO()
        np.save(buf, emb)
        sample["emb.npy"] = buf.getvalue()
        out.emb_dim = int(emb.shape[-1])
    if item.path is not None or item.captions:  # IDX samples: cls says it all (tar pads every file to 1 KB)
        sample["json"] = json.dumps(meta, ensure_ascii=False).encode()
    out.sample = sample
    return out
