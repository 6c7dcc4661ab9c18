"""The captioned-digits attribute probe (ganscale.metrics.digits_probe) against an encoder pair whose
answers are known by construction: it reads the colour and nothing else."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganscale.data.synth.captioned_digits import COLOURS
from ganscale.metrics.digits_judge import COLOUR_NAMES, cell, parse_caption
from ganscale.metrics.digits_probe import attribute_probe, single_digits

RGB = torch.tensor([COLOURS[c] for c in COLOUR_NAMES], dtype=torch.float) / 255  # [6, 3]


class ColourOnly(nn.Module):
    """Sentence = one-hot of the caption's colour; image feature = one-hot of the colour whose RGB
    pattern the image's lit channels show. Digit and position are invisible to both halves."""

    cfg = SimpleNamespace(image_size=64)

    def encode_captions(self, captions):
        colours = []
        for c in captions:
            (target,) = [t for t in parse_caption(c) if t]
            colours.append((target - 1) % len(COLOUR_NAMES))
        return torch.tensor(colours)[:, None], torch.ones(len(captions), dtype=torch.long)

    def text(self, ids, lengths):
        return SimpleNamespace(sentence=F.one_hot(ids[:, 0], len(COLOUR_NAMES)).float())

    def image(self, x):
        lit = (x.amax(dim=(2, 3)) > 0).float()  # [N, 3] channels present, pixels in [-1, 1]
        colour = (lit[:, None, :] == RGB[None]).all(-1).float().argmax(1)
        return None, F.one_hot(colour, len(COLOUR_NAMES)).float()


def canvas(quadrant: int, colour: str) -> torch.Tensor:
    img = torch.zeros(3, 64, 64, dtype=torch.uint8)
    r, c = 32 * (quadrant // 2), 32 * (quadrant % 2)
    img[:, r + 8:r + 24, c + 8:c + 24] = (RGB[COLOUR_NAMES.index(colour)] * 255).to(torch.uint8)[:, None, None]
    return img


def test_probe_reports_what_the_pair_reads():
    layout = [(0, "red", 3), (1, "blue", 0), (2, "cyan", 7), (3, "yellow", 0), (0, "magenta", 9), (2, "green", 5)]
    images = torch.stack([canvas(q, c) for q, c, _ in layout] + [canvas(0, "red")])
    targets = torch.zeros(len(images), 4, dtype=torch.long)
    for i, (q, c, d) in enumerate(layout):
        targets[i, q] = cell(d, c)
    targets[-1, 0], targets[-1, 3] = cell(1, "red"), cell(2, "blue")  # two digits: not probed

    assert [r[0] for r in single_digits(targets)] == list(range(len(layout)))
    res = attribute_probe(ColourOnly(), images, targets)
    assert res["images"] == len(layout)
    assert res["colour"] == 1.0
    # every digit (or position) candidate scores the same, and argmax keeps the first: digit 0
    # (quadrant 0) wins exactly for the images that show it
    assert res["digit"] == pytest.approx(2 / 6) and res["position"] == pytest.approx(2 / 6)
    assert res["shift"]["digit"] == 0 and res["shift"]["position"] == 0
    assert res["shift"]["colour"] == pytest.approx(math.sqrt(2))
    assert res["chance"] == pytest.approx({"digit": 0.1, "colour": 1 / 6, "position": 0.25})
