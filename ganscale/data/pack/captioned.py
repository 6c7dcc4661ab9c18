"""Captioned datasets in the layouts their users already have, listed as `Item`s for `data pack`.

    ganscale data pack data/birds data/cub-train --split train --crop bbox     # CUB-200-2011 + Reed captions
    ganscale data pack data/birds data/cub-test --split test --crop bbox
    ganscale data pack data/flowers data/flowers-train --split train           # Oxford-102 + Reed captions
    ganscale data pack data/coco data/coco-val --split val                     # COCO captions

CUB (StackGAN/AttnGAN/DF-GAN `data/birds`): ROOT/CUB_200_2011/{images.txt, bounding_boxes.txt,
train_test_split.txt, classes.txt, images/<class>/<img>.jpg} and ROOT/text/<class>/<img>.txt with
one caption per line. `--split train|test` follows train_test_split.txt (`all` packs both).
`--crop bbox` is StackGAN's bird crop: a square of 1.5x the longer box side around the box
centre, clipped to the image (AttnGAN's `get_imgs`).

Oxford-102 (Reed et al.'s `cvpr2016_flowers`): ROOT/jpg/image_<5 digits>.jpg (or --image-root) and
ROOT/text_c10/class_<5 digits>/image_<5 digits>.txt, e.g. text_c10/class_00001/image_06734.txt;
the class is the folder (class_00001 -> label 0).
`--split train|test` takes the classes listed in ROOT/trainvalclasses.txt / testclasses.txt
(Reed's class-disjoint split); `all` packs every class.

COCO: ROOT/annotations/captions_{train,val}{2017,2014}.json with the images in ROOT/<split><year>/
(or ROOT/images/<split><year>/, or --image-root); every caption of an image is kept, in
annotation-id order. `--split test` means val (COCO's captions have no public test split).

Every split's vocabulary is built from the TRAIN captions (Source.vocab_captions).
"""

from __future__ import annotations

import glob
import json
import os
from typing import Optional

from ganscale.data.pack.sources import Item, Source
from ganscale.errors import UserError

SPLITS = ("train", "test", "all")


def detect_captioned(path: str) -> Optional[str]:
    """cub, flowers or coco when `path` holds that layout, else None."""
    if os.path.isfile(os.path.join(path, "CUB_200_2011", "images.txt")):
        return "cub"
    if os.path.isdir(os.path.join(path, "text_c10")):
        return "flowers"
    if glob.glob(os.path.join(path, "annotations", "captions_*.json")):
        return "coco"
    return None


def open_captioned(kind: str, root: str, split: str, image_root: Optional[str], crop: str) -> Source:
    if not os.path.isdir(root):
        raise UserError(f"{root} is not a folder; pass the dataset root (see `ganscale data pack --help`)")
    if crop not in ("none", "bbox"):
        raise UserError(f"--crop {crop!r} unknown; choose none or bbox")
    if crop == "bbox" and kind != "cub":
        raise UserError(f"--crop bbox needs object boxes; {kind} has none (only CUB's bounding_boxes.txt)")
    if kind == "cub":
        return cub_source(root, split, crop == "bbox")
    if kind == "flowers":
        return flowers_source(root, split, image_root)
    return coco_source(root, split, image_root)


def read_captions(path: str) -> list[str]:
    """One caption per non-empty line (Reed's files: UTF-8, sometimes with stray bytes)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.strip() for line in f if line.strip()]


def _check_split(split: str, kind: str) -> str:
    split = {"t10k": "test", "val": "test"}.get(split, split)
    if split not in SPLITS:
        raise UserError(f"--split {split!r} for {kind}: choose train, test or all")
    return split


def _id_table(path: str, ncols: int) -> dict[int, list[str]]:
    """`<image_id> col1 col2 ...` lines (the CUB metadata files) -> {id: [cols]}."""
    if not os.path.isfile(path):
        raise UserError(f"{path} is missing; CUB-200-2011 ships it in CUB_200_2011/ (re-extract the archive)")
    out = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != ncols + 1 or not parts[0].isdigit():
                raise UserError(f"{path}:{lineno}: expected '<image_id>' and {ncols} value(s), got {line.strip()!r}")
            out[int(parts[0])] = parts[1:]
    return out


# ---------------------------------------------------------------------------- CUB-200-2011
def cub_source(root: str, split: str, bbox_crop: bool) -> Source:
    split = _check_split(split, "CUB")
    cub = os.path.join(root, "CUB_200_2011")
    images = _id_table(os.path.join(cub, "images.txt"), 1)
    is_train = _id_table(os.path.join(cub, "train_test_split.txt"), 1)
    boxes = _id_table(os.path.join(cub, "bounding_boxes.txt"), 4) if bbox_crop else {}
    classes_txt = os.path.join(cub, "classes.txt")
    if os.path.isfile(classes_txt):  # all 200 classes, so labels match the full dataset's
        classes = [v[0] for _, v in sorted(_id_table(classes_txt, 1).items())]
    else:
        classes = sorted({rel[0].split("/")[0] for rel in images.values()})
    index = {c: i for i, c in enumerate(classes)}
    text_root = os.path.join(root, "text")
    if not os.path.isdir(text_root):
        raise UserError(f"{text_root} is missing: put Reed et al.'s captions (text_c10, one <img>.txt per image "
                        "under text/<class>/) beside CUB_200_2011/, as StackGAN/AttnGAN/DF-GAN expect")
    items, problems, train_caps = [], [], []
    for image_id, (rel,) in sorted(images.items()):
        if image_id not in is_train:
            problems.append(f"images.txt id {image_id} ({rel}): not in train_test_split.txt")
            continue
        train = is_train[image_id][0] == "1"
        cap_path = os.path.join(text_root, os.path.splitext(rel)[0] + ".txt")
        caps = read_captions(cap_path) if os.path.isfile(cap_path) else []
        if train:
            train_caps += caps
        if split != "all" and train != (split == "train"):
            continue
        if not caps:
            problems.append(f"{rel}: no captions in {cap_path}")
            continue
        cls = rel.split("/")[0]
        if cls not in index:
            problems.append(f"{rel}: class {cls} is not in classes.txt")
            continue
        box = None
        if bbox_crop:
            if image_id not in boxes:
                problems.append(f"{rel}: no line in bounding_boxes.txt (needed by --crop bbox)")
                continue
            box = tuple(float(v) for v in boxes[image_id])
        items.append(Item(source=rel, path=os.path.join(cub, "images", rel), label=index[cls], captions=caps,
                          bbox=box, meta={"image_id": image_id}))
    if not items:
        raise UserError(f"{root}: no {split} images with captions (images.txt lists {len(images)}; "
                        f"first problem: {problems[0] if problems else 'none'})")
    return Source("cub", items, classes, problems=problems, vocab_captions=train_caps,
                  description={"kind": "cub", "path": os.path.abspath(root), "split": split,
                               "crop": "bbox" if bbox_crop else "none"})


def stackgan_crop(width: int, height: int, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """StackGAN/AttnGAN's bird crop: a square of side 1.5 x max(box w, h) around the box centre,
    clipped to the image; (left, top, right, bottom) for PIL."""
    x, y, w, h = box
    r = int(max(w, h) * 0.75)
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    return max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)


# ---------------------------------------------------------------------------- Oxford-102 flowers
def _class_list(path: str) -> set[str]:
    with open(path) as f:
        return {line.strip() for line in f if line.strip()}


def flowers_source(root: str, split: str, image_root: Optional[str]) -> Source:
    split = _check_split(split, "Oxford-102")
    text_root = os.path.join(root, "text_c10")
    image_dir = image_root or os.path.join(root, "jpg")
    if not os.path.isdir(image_dir):
        raise UserError(f"{image_dir} is missing: put the Oxford-102 images (102flowers.tgz extracts to jpg/) "
                        "beside text_c10/, or pass --image-root")
    class_dirs = sorted(d for d in os.listdir(text_root) if d.startswith("class_") and
                        os.path.isdir(os.path.join(text_root, d)))
    if not class_dirs:
        raise UserError(f"{text_root}: no class_<5 digits> folders (Reed et al.'s layout text_c10/class_00001/...)")
    lists = {s: os.path.join(root, f) for s, f in (("train", "trainvalclasses.txt"), ("test", "testclasses.txt"))}
    if split != "all" and not os.path.isfile(lists[split]):
        raise UserError(f"{lists[split]} is missing (Reed's class split); add it or pass --split all")
    train_classes = _class_list(lists["train"]) if os.path.isfile(lists["train"]) else set(class_dirs)
    wanted = set(class_dirs) if split == "all" else _class_list(lists[split])
    # Labels follow the class number (class_00001 -> 0) so every split shares them.
    classes = [f"class_{i:05d}" for i in range(1, 1 + max(int(d[6:]) for d in class_dirs))]
    items, problems, train_caps = [], [], []
    for d in class_dirs:
        for name in sorted(os.listdir(os.path.join(text_root, d))):
            if not name.endswith(".txt"):
                continue  # Reed's release also holds .h5 / .t7 embeddings here
            caps = read_captions(os.path.join(text_root, d, name))
            if d in train_classes:
                train_caps += caps
            if d not in wanted:
                continue
            rel = f"{d}/{name}"
            if not caps:
                problems.append(f"{rel}: no captions")
                continue
            items.append(Item(source=rel, path=os.path.join(image_dir, name[:-4] + ".jpg"),
                              label=int(d[6:]) - 1, captions=caps))
    if not items:
        raise UserError(f"{root}: no {split} images with captions under {text_root}")
    return Source("flowers", items, classes, problems=problems, vocab_captions=train_caps,
                  description={"kind": "flowers", "path": os.path.abspath(root), "split": split,
                               "image_root": os.path.abspath(image_dir)})


# ---------------------------------------------------------------------------- COCO captions
def _coco_file(root: str, split: str) -> tuple[str, str]:
    """(captions json, split+year) for train / val, newest year first."""
    for year in ("2017", "2014"):
        path = os.path.join(root, "annotations", f"captions_{split}{year}.json")
        if os.path.isfile(path):
            return path, f"{split}{year}"
    found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(root, "annotations", "captions_*.json")))
    raise UserError(f"{root}/annotations has no captions_{split}2017.json or captions_{split}2014.json "
                    f"(found: {', '.join(found) or 'none'}); pick another --split")


def _coco_captions(path: str) -> tuple[list[dict], dict[int, list[str]]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        images, anns = data["images"], data["annotations"]
        caps: dict[int, list[tuple[int, str]]] = {}
        for a in anns:
            # whitespace collapsed: some COCO captions hold line breaks, and txt is one caption per line
            caps.setdefault(int(a["image_id"]), []).append((int(a["id"]), " ".join(str(a["caption"]).split())))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a COCO captions file ({type(e).__name__}: {e}); use the original "
                        "annotations/captions_*.json") from None
    return images, {i: [c for _, c in sorted(v) if c] for i, v in caps.items()}


def coco_source(root: str, split: str, image_root: Optional[str]) -> Source:
    split = {"test": "val", "t10k": "val"}.get(split, split)
    if split not in ("train", "val"):
        raise UserError(f"--split {split!r} for COCO: choose train or val")
    path, folder = _coco_file(root, split)
    if image_root is None:
        cands = [os.path.join(root, folder), os.path.join(root, "images", folder)]
        image_root = next((c for c in cands if os.path.isdir(c)), None)
        if image_root is None:
            raise UserError(f"no image folder {cands[0]} or {cands[1]}; pass --image-root")
    images, caps = _coco_captions(path)
    train_caps = None
    if split == "val":
        try:
            train_caps = [c for v in _coco_captions(_coco_file(root, "train")[0])[1].values() for c in v]
        except UserError:
            train_caps = None  # no train captions here: the packed ones build the vocabulary
    items, problems = [], []
    for im in sorted(images, key=lambda im: int(im["id"])):
        c = caps.get(int(im["id"]), [])
        if not c:
            problems.append(f"{im['file_name']}: no captions in {os.path.basename(path)}")
            continue
        items.append(Item(source=im["file_name"], path=os.path.join(image_root, im["file_name"]), captions=c,
                          meta={"image_id": int(im["id"])}))
    if not items:
        raise UserError(f"{path}: no images with captions")
    return Source("coco", items, [], problems=problems, vocab_captions=train_caps,
                  description={"kind": "coco", "path": os.path.abspath(path), "split": split,
                               "image_root": os.path.abspath(image_root)})
