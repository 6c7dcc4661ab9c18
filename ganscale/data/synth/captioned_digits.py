"""Captioned digits (after alignDRAW's "MNIST with captions", Mansimov et al. 2016): a judged
text-to-image benchmark that runs on CPU.

    ganscale data synth captioned-digits data/digits-train --split train --num 20000 --holdout "red 7,blue 2"
    ganscale data synth captioned-digits data/digits-test --split test --num 2000 --holdout "red 7,blue 2"

Canvas 64x64 RGB on black, four 32x32 quadrants (top left, top right, bottom left, bottom right).
Each image holds 1..max_digits MNIST digits in different quadrants; a digit is its 28x28 MNIST
image times one of six colours, pasted in its quadrant at offset (2+dy, 2+dx), dy, dx uniform in
{-2..2}. Train images take MNIST train digits, test images t10k digits.

Every image gets one caption per template (6, all different); the first is the canonical form
`a {colour} {digit} in the {position}`, joined with ` and ` for several digits, quadrants in
reading order. `--holdout "red 7,blue 2"` removes every training image that holds one of those
(colour, digit) pairs (test images keep them: that is what compositional generalisation is scored
on). Each sample's json carries the truth, "objects": [{digit, colour, quadrant, box}], for the
judge. The vocabulary is built from every template wording, so train and test share it. The same
arguments give the same shards, byte for byte.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from ganscale.errors import UserError

SIZE, QUAD, DIGIT = 64, 32, 28
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
           "yellow": (255, 255, 0), "cyan": (0, 255, 255), "magenta": (255, 0, 255)}
POSITIONS = ("top left", "top right", "bottom left", "bottom right")
"""Quadrant q covers rows 32*(q//2).. and columns 32*(q%2).."""
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MAX_SHIFT = 2


@dataclass(frozen=True)
class Digit:
    digit: int
    colour: str
    quadrant: int
    dy: int
    dx: int
    mnist_index: int

    @property
    def box(self) -> tuple[int, int]:
        """Top-left pixel (row, column) of the pasted 28x28 digit."""
        return QUAD * (self.quadrant // 2) + 2 + self.dy, QUAD * (self.quadrant % 2) + 2 + self.dx

    def truth(self) -> dict:
        return {"digit": self.digit, "colour": self.colour, "quadrant": POSITIONS[self.quadrant],
                "box": [*self.box, DIGIT, DIGIT], "mnist_index": self.mnist_index}


# One phrase per digit and how the phrases join; the first is the canonical caption.
TEMPLATES: tuple[tuple[str, str, bool], ...] = (
    ("a {colour} {digit} in the {position}", " and ", False),
    ("the number {word} in {colour} at the {position}", " and ", False),
    ("{position}: a {colour} {digit}", ", ", False),
    ("in the {position} there is a {colour} {word}", " and ", True),
    ("a {word} coloured {colour} in the {position}", " and ", True),
    ("a {colour} digit {digit} placed at the {position}", ", and ", False),
)
"""(phrase, joiner, reversed order): reversed templates name the digits last quadrant first."""


def captions(digits: list[Digit]) -> list[str]:
    ordered = sorted(digits, key=lambda d: d.quadrant)
    out = []
    for phrase, joiner, rev in TEMPLATES:
        parts = [phrase.format(colour=d.colour, digit=d.digit, word=WORDS[d.digit], position=POSITIONS[d.quadrant])
                 for d in (ordered[::-1] if rev else ordered)]
        out.append(joiner.join(parts))
    return out


def canonical(digits: list[Digit]) -> str:
    return captions(digits)[0]


def vocabulary_captions() -> list[str]:
    """Every phrase of every template for every colour, digit and position (the vocabulary's source,
    identical for train and test)."""
    return [phrase.format(colour=c, digit=d, word=WORDS[d], position=p) + joiner
            for phrase, joiner, _ in TEMPLATES for c in COLOURS for d in range(10) for p in POSITIONS]


def parse_holdout(text: str) -> list[tuple[str, int]]:
    """"red 7,blue 2" -> [("red", 7), ("blue", 2)]; UserError naming a bad pair."""
    pairs = []
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        words = part.lower().split()
        if len(words) != 2 or words[0] not in COLOURS or words[1] not in [str(i) for i in range(10)]:
            raise UserError(f"--holdout pair {part!r}: write 'COLOUR DIGIT' pairs separated by commas, e.g. "
                            f"\"red 7,blue 2\"; colours: {', '.join(COLOURS)}; digits 0-9")
        pairs.append((words[0], int(words[1])))
    return pairs


def render(digits: list[Digit], mnist: np.ndarray) -> np.ndarray:
    """The 64x64x3 uint8 canvas: black, each digit's MNIST pixels times its colour in its box."""
    canvas = np.zeros((SIZE, SIZE, 3), np.uint8)
    for d in digits:
        top, left = d.box
        tint = np.asarray(COLOURS[d.colour], np.uint16)
        canvas[top:top + DIGIT, left:left + DIGIT] = (mnist[d.mnist_index][:, :, None] * tint // 255).astype(np.uint8)
    return canvas


def draw_layouts(labels: np.ndarray, num: int, seed: int, max_digits: int,
                 holdout: list[tuple[str, int]]) -> list[list[Digit]]:
    """`num` layouts; a layout holding a held-out (colour, digit) pair is drawn again."""
    if not 1 <= max_digits <= 4:
        raise UserError(f"--max-digits {max_digits}: choose 1 to 4 (four quadrants)")
    if num < 1:
        raise UserError(f"--num {num}: give at least 1 image")
    rng = np.random.default_rng(seed)
    banned = set(holdout)
    colours = list(COLOURS)
    if len(banned) >= len(colours) * 10:
        raise UserError("--holdout removes every (colour, digit) pair; keep some")
    out: list[list[Digit]] = []
    while len(out) < num:
        k = int(rng.integers(1, max_digits + 1))
        quads = rng.choice(4, size=k, replace=False)
        layout = []
        for q in quads:
            i = int(rng.integers(len(labels)))
            dy, dx = (int(v) for v in rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=2))
            layout.append(Digit(int(labels[i]), colours[int(rng.integers(len(colours)))], int(q), dy, dx, i))
        if banned and any((d.colour, d.digit) in banned for d in layout):
            continue
        out.append(sorted(layout, key=lambda d: d.quadrant))
    return out


def recorded_holdout(manifest, removed: bool = False) -> list[str]:
    """The (colour, digit) pairs ("red 7") a synthesized folder's manifest records, [] when none;
    `removed`: only where they were taken out of the images (a train split; a test split records
    the pairs it was made with but keeps them)."""
    src = (manifest.source or {}) if manifest is not None else {}
    pairs = src.get("holdout")
    if not isinstance(pairs, list) or (removed and not src.get("holdout_applied")):
        return []
    return list(pairs)


def synth_source(mnist_dir: str, split: str, num: int, seed: int, max_digits: int, holdout_text: str = ""):
    """The images as a pack `Source` (pixels, captions, truth); the holdout applies to train only."""
    from ganscale.data.pack.sources import Item, Source, _find_idx, read_idx

    if split not in ("train", "test"):
        raise UserError(f"--split {split!r}: choose train or test")
    if not os.path.isdir(mnist_dir):
        raise UserError(f"{mnist_dir} is not a folder; pass --mnist DIR holding the MNIST IDX files "
                        "(train-images-idx3-ubyte.gz, t10k-...)")
    holdout = parse_holdout(holdout_text)
    images_path = _find_idx(mnist_dir, "train" if split == "train" else "t10k", "images")
    images = read_idx(images_path)
    labels = read_idx(_find_idx(mnist_dir, "train" if split == "train" else "t10k", "labels"))
    if images.shape[1:] != (DIGIT, DIGIT) or len(images) != len(labels):
        raise UserError(f"{images_path}: expected 28x28 MNIST digits with one label each, got {images.shape}")
    layouts = draw_layouts(labels, num, seed, max_digits, holdout if split == "train" else [])
    width = len(str(num - 1))
    # rendered when written (functools.partial shares the one MNIST array): memory stays flat in --num
    items = [Item(source=f"digits[{n:0{width}d}]", pixels=functools.partial(render, lay, images),
                  captions=captions(lay), meta={"objects": [d.truth() for d in lay]})
             for n, lay in enumerate(layouts)]
    desc = {"kind": "captioned-digits", "split": split, "num": num, "seed": seed, "max_digits": max_digits,
            "holdout": [f"{c} {d}" for c, d in holdout], "holdout_applied": split == "train" and bool(holdout),
            "mnist": os.path.abspath(images_path)}
    return Source("synth", items, [], vocab_captions=vocabulary_captions(), description=desc)
