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
from ganscale.metrics.digits_judge import COLOUR_NAMES, cell, decode_cell, parse_caption
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
            colours.append(COLOUR_NAMES.index(decode_cell(target)[1]))
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
    # the colour-only pair hears digit 0 for every digit: column 0 of the confusion holds them all
    assert res["per_digit"] == {0: 1.0, 3: 0.0, 5: 0.0, 7: 0.0, 9: 0.0}
    assert [row[0] for row in res["digit_confusion"]] == [2, 0, 0, 1, 0, 1, 0, 1, 0, 1]
    assert sum(map(sum, res["digit_confusion"])) == len(layout)


class OneHotText:
    """Sentence = [a * one-hot colour, b * one-hot digit, c * one-hot position] of a canonical caption."""

    def __init__(self, a: float, b: float, c: float):
        self.a, self.b, self.c = a, b, c

    def encode(self, captions, device=None):
        from ganscale.conditions import TextCondition
        from ganscale.data.synth.captioned_digits import POSITIONS

        rows = []
        for cap in captions:
            (target,) = [(q, t) for q, t in enumerate(parse_caption(cap)) if t]
            q, t = target
            digit, colour = decode_cell(t)
            rows.append(torch.cat([self.a * F.one_hot(torch.tensor(COLOUR_NAMES.index(colour)), len(COLOUR_NAMES)),
                                   self.b * F.one_hot(torch.tensor(digit), 10),
                                   self.c * F.one_hot(torch.tensor(q), len(POSITIONS))]).float())
        return TextCondition(torch.stack(rows))


def test_condition_probe_sets_what_g_receives_beside_the_ca_noise():
    from ganscale.metrics.digits_probe import condition_probe
    from ganscale.nets.text2img.common import CondAugment

    ca = CondAugment(20, 20)
    with torch.no_grad():  # mu = the sentence itself, log-variance log(4): sigma 2 on every dimension
        ca.fc.weight.zero_()
        ca.fc.weight[:20] = torch.eye(20)
        ca.fc.bias.zero_()
        ca.fc.bias[20:] = math.log(4.0)
    text = OneHotText(a=0.5, b=0.1, c=3.0)
    module = SimpleNamespace(sampler=SimpleNamespace(ca=ca), net=lambda name: text, device="cpu")
    res = condition_probe(module)
    assert res["ca_dim"] == 20
    assert res["noise_norm"] == pytest.approx(2 * math.sqrt(20))
    assert res["mu_shift"] == pytest.approx({"colour": 0.5 * math.sqrt(2), "digit": 0.1 * math.sqrt(2),
                                             "position": 3.0 * math.sqrt(2)})
    assert ca.training  # left as it was
    # a G without conditioning augmentation (DF-GAN) has nothing to probe
    assert condition_probe(SimpleNamespace(sampler=SimpleNamespace(), net=None, device="cpu")) is None
