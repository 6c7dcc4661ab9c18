"""Inputs `ganscale data pack` understands, listed as `Item`s (nothing is decoded here).

- an image folder in the ImageNet layout: ROOT/<class>/<image> (or images directly in ROOT, unlabeled)
- MNIST / Fashion-MNIST IDX files (gzip or raw): a folder holding `<split>-images-idx3-ubyte.gz`
  and `<split>-labels-idx1-ubyte.gz`, or the images file itself
- a JSONL manifest of image-caption pairs, one object per line:
  {"image": "rel/or/abs.jpg", "captions": ["...", "..."], "label": 3 or "cat", "text_emb": "e.npy"}
  (`caption` may replace `captions`; `label` and `text_emb` are optional; `text_emb` is a .npy
  path or a list of numbers, one row per caption or a single vector)
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ganscale.errors import UserError

IMAGE_FILE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SOURCE_KINDS = ("auto", "folder", "idx", "jsonl", "cub", "flowers", "coco")


@dataclass
class Item:
    """One input sample; `source` names it in every message (file, or file[index])."""

    source: str
    path: Optional[str] = None
    """Image file to read (folder, jsonl)."""
    pixels: Any = None
    """Raw uint8 pixels H x W [x C] (IDX), or a function that makes them when the sample is encoded
    (synthetic data: no dataset-sized array in memory)."""
    label: int = -1
    """Class index, -1 = unlabeled."""
    captions: list[str] = field(default_factory=list)
    text_emb: Any = None
    """A .npy path or nested list of numbers (jsonl)."""
    bbox: Optional[tuple[float, float, float, float]] = None
    """Object box (x, y, width, height) in pixels: `--crop bbox` cuts StackGAN's square around it."""
    meta: dict = field(default_factory=dict)
    """Extra fields for the sample's json (e.g. the synthetic digits' ground truth)."""


@dataclass
class Source:
    kind: str
    items: list[Item]
    classes: list[str]
    problems: list[str] = field(default_factory=list)
    """Inputs rejected while listing (bad JSONL lines); they count as skipped."""
    notes: list[str] = field(default_factory=list)
    """Warnings that skip nothing (an empty class folder, ignored files)."""
    description: dict = field(default_factory=dict)
    vocab_captions: Optional[list[str]] = None
    """Captions the word vocabulary is built from: the TRAIN split's, also when another split is
    packed, so every split of a dataset shares one vocabulary. None = the packed items' captions."""


def detect_kind(path: str) -> str:
    if os.path.isfile(path):
        if path.endswith((".jsonl", ".json")):
            return "jsonl"
        if "idx3-ubyte" in os.path.basename(path):
            return "idx"
        raise UserError(f"{path}: cannot tell what this file is; pass --source folder|idx|jsonl "
                        "(a .jsonl caption manifest or an *-images-idx3-ubyte[.gz] file)")
    if os.path.isdir(path):
        if glob.glob(os.path.join(path, "*-images[-.]idx3-ubyte*")):
            return "idx"
        from ganscale.data.pack.captioned import detect_captioned

        return detect_captioned(path) or "folder"
    raise UserError(f"{path} does not exist; pass an image folder, an IDX folder/file or a .jsonl manifest")


def open_source(path: str, kind: str = "auto", split: str = "train", image_root: Optional[str] = None,
                crop: str = "none") -> Source:
    kind = detect_kind(path) if kind == "auto" else kind
    if kind in ("cub", "flowers", "coco"):
        from ganscale.data.pack import captioned

        return captioned.open_captioned(kind, path, split, image_root, crop)
    if crop != "none":
        raise UserError(f"--crop {crop} needs object boxes; only CUB-200-2011 (bounding_boxes.txt) has them")
    if kind == "folder":
        return folder_source(path)
    if kind == "idx":
        return idx_source(path, split)
    if kind == "jsonl":
        return jsonl_source(path, image_root)
    raise UserError(f"--source {kind!r} unknown; choose one of: {', '.join(SOURCE_KINDS)}")


# ---------------------------------------------------------------------------- image folder
def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_FILE_EXTS) and not name.startswith(".")


def _walk_images(folder: str) -> tuple[list[str], int]:
    """Image files under `folder` (recursive, sorted) and the number of other files ignored."""
    found, ignored = [], 0
    for d, subdirs, files in os.walk(folder, followlinks=True):
        subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
        for f in sorted(files):
            if _is_image(f):
                found.append(os.path.join(d, f))
            elif not f.startswith("."):
                ignored += 1
    return found, ignored


def folder_source(root: str) -> Source:
    if not os.path.isdir(root):
        raise UserError(f"{root} is not a folder; pass ROOT with one subfolder per class (ImageNet layout)")
    entries = sorted(os.listdir(root))
    class_dirs = [e for e in entries if os.path.isdir(os.path.join(root, e)) and not e.startswith(".")]
    top_images = [e for e in entries if os.path.isfile(os.path.join(root, e)) and _is_image(e)]
    notes: list[str] = []
    if class_dirs and top_images:
        raise UserError(f"{root} mixes images ({os.path.join(root, top_images[0])}, ...) with class subfolders "
                        f"({class_dirs[0]}/, ...); move the loose images into a class folder or remove them")
    items: list[Item] = []
    if class_dirs:
        ignored = 0
        for label, name in enumerate(class_dirs):
            files, n_ignored = _walk_images(os.path.join(root, name))
            ignored += n_ignored
            if not files:
                notes.append(f"{os.path.join(root, name)}: class folder holds no images "
                             f"(class {label} will have no samples)")
            items += [Item(source=os.path.relpath(f, root), path=f, label=label) for f in files]
        classes = class_dirs
        if ignored:
            notes.append(f"{root}: ignored {ignored} files that are not images ({', '.join(IMAGE_FILE_EXTS)})")
    else:
        items = [Item(source=f, path=os.path.join(root, f)) for f in top_images]
        classes = []
    if not items:
        raise UserError(f"{root}: no images found (looked for {', '.join(IMAGE_FILE_EXTS)}); expected "
                        "ROOT/<class>/<image> (ImageNet layout) or images directly in ROOT")
    return Source("folder", items, classes, notes=notes, description={"kind": "folder", "path": os.path.abspath(root)})


# ---------------------------------------------------------------------------- IDX (MNIST)
def read_idx(path: str) -> np.ndarray:
    """An IDX file (optionally gzip'd) as a uint8 array; UserError naming the file when malformed."""
    try:
        with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise UserError(f"{path}: cannot read IDX file ({e}); re-download the original file") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError(f"{path}: not a uint8 IDX file (bad magic number {data[:4].hex()}); "
                        "expected MNIST-style *-idx3-ubyte / *-idx1-ubyte")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise UserError(f"{path}: truncated or padded IDX file ({len(data)} bytes, header says {expected}); "
                        "re-download the original file")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(folder: str, split: str, what: str) -> str:
    names = sorted(glob.glob(os.path.join(folder, f"{split}-{what}[-.]idx?-ubyte*")))
    if not names:
        raise UserError(f"{folder}: no {split}-{what}-idx*-ubyte[.gz] file; pass --split train or --split t10k "
                        "(MNIST file names)")
    return names[0]


def idx_source(path: str, split: str = "train") -> Source:
    split = {"test": "t10k"}.get(split, split)
    if os.path.isdir(path):
        images_path = _find_idx(path, split, "images")
        labels_path = _find_idx(path, split, "labels")
    else:
        images_path = path
        labels_path = path.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
        if not os.path.isfile(labels_path):
            raise UserError(f"{images_path}: the matching labels file {labels_path} is missing")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise UserError(f"{images_path}: expected images N x H x W and labels N, got {images.shape} and {labels.shape}")
    if len(images) != len(labels):
        raise UserError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
                        "use files of the same split")
    fashion = "fashion" in os.path.abspath(images_path).lower()
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    classes = FASHION_MNIST_CLASSES if fashion and num_classes <= 10 else [str(i) for i in range(num_classes)]
    base = os.path.basename(images_path)
    items = [Item(source=f"{base}[{i}]", pixels=images[i], label=int(labels[i])) for i in range(len(images))]
    if not items:
        raise UserError(f"{images_path}: holds no images")
    return Source("idx", items, list(classes),
                  description={"kind": "idx", "images": os.path.abspath(images_path),
                               "labels": os.path.abspath(labels_path), "split": split})


# ---------------------------------------------------------------------------- JSONL captions
def _captions(rec: dict) -> Optional[list[str]]:
    caps = rec.get("captions", rec.get("caption"))
    if isinstance(caps, str):
        caps = [caps]
    if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
        return None
    return caps


def jsonl_source(path: str, image_root: Optional[str] = None) -> Source:
    if not os.path.isfile(path):
        raise UserError(f"{path} does not exist; pass a JSONL file with one {{image, captions}} object per line")
    root = image_root or os.path.dirname(os.path.abspath(path))
    rows: list[tuple[Item, Any]] = []
    problems: list[str] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{os.path.basename(path)}:{lineno}"
            try:
                rec = json.loads(line)
            except ValueError as e:
                problems.append(f"{where}: not valid JSON ({e})")
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("image"), str):
                problems.append(f"{where}: needs an \"image\" path (string)")
                continue
            caps = _captions(rec)
            if caps is None:
                problems.append(f"{where}: needs \"captions\": a non-empty list of strings")
                continue
            img = rec["image"] if os.path.isabs(rec["image"]) else os.path.join(root, rec["image"])
            emb = rec.get("text_emb")
            if isinstance(emb, str) and not os.path.isabs(emb):
                emb = os.path.join(root, emb)
            rows.append((Item(source=f"{where} ({rec['image']})", path=img, captions=caps, text_emb=emb),
                         rec.get("label")))
    labels = [lab for _, lab in rows if lab is not None]
    classes: list[str] = []
    if labels:
        if all(isinstance(x, str) for x in labels):
            classes = sorted(set(labels))
            index = {c: i for i, c in enumerate(classes)}
        elif all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in labels):
            classes = [str(i) for i in range(max(labels) + 1)]
            index = {i: i for i in range(len(classes))}
        else:
            raise UserError(f"{path}: labels must be all class names (strings) or all integers >= 0")
        kept = []
        for item, lab in rows:
            if lab is None:
                problems.append(f"{item.source}: no \"label\" while other lines have one")
                continue
            item.label = index[lab]
            kept.append((item, lab))
        rows = kept
    items = [item for item, _ in rows]
    if not items:
        raise UserError(f"{path}: no usable lines ({len(problems)} rejected{': ' + problems[0] if problems else ''})")
    return Source("jsonl", items, classes, problems=problems,
                  description={"kind": "jsonl", "path": os.path.abspath(path), "image_root": os.path.abspath(root)})
