"""A tiny captioned image set that tests build themselves: coloured squares in a quadrant.

    make_captioned_shards(tmp_path / "shards", num=240, seed=0)

Each 32x32 image on black holds one 12x12 square of one of 6 colours in one of 4 quadrants (a
small random jitter), so there are 24 classes; each image has 3 captions of different templates
("a red square in the top left", ...). The set is packed with the shard writer from a JSONL
manifest, and vocab.json is written beside manifest.json.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
           "cyan": (0, 255, 255), "magenta": (255, 0, 255)}
PLACES = ["top left", "top right", "bottom left", "bottom right"]
TEMPLATES = ["a {c} square in the {p}", "the square at the {p} is {c}", "{p}: a {c} block"]


def make_captioned_shards(out: str, num: int = 240, seed: int = 0, size: int = 32) -> str:
    from ganscale.data.pack.sources import open_source
    from ganscale.data.pack.writer import PackOptions, pack
    from ganscale.text.vocab import Vocab

    raw = os.path.join(str(out) + "-raw")
    os.makedirs(raw, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    lines, captions = [], []
    for i in range(num):
        c, p = int(rng.integers(len(names))), int(rng.integers(len(PLACES)))
        img = np.zeros((size, size, 3), np.uint8)
        half, s = size // 2, 12
        y0 = (p // 2) * half + 2 + int(rng.integers(0, half - s - 3))
        x0 = (p % 2) * half + 2 + int(rng.integers(0, half - s - 3))
        img[y0:y0 + s, x0:x0 + s] = COLOURS[names[c]]
        Image.fromarray(img).save(os.path.join(raw, f"{i}.png"))
        caps = [t.format(c=names[c], p=PLACES[p]) for t in TEMPLATES]
        captions += caps
        lines.append(json.dumps({"image": f"{i}.png", "captions": caps, "label": c * len(PLACES) + p}))
    with open(os.path.join(raw, "pairs.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    pack(open_source(os.path.join(raw, "pairs.jsonl")), str(out), PackOptions(), log=lambda m: None)
    Vocab.build(captions).save(os.path.join(str(out), "vocab.json"))
    return str(out)
