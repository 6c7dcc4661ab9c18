"""Which words of a captioned-digits caption a DAMSM encoder pair actually reads.

    from ganscale.metrics.digits_probe import attribute_probe
    from ganscale.metrics.digits_judge import load_truth
    images, targets, _ = load_truth("data/digits-test")
    attribute_probe(load_encoder("encoder.safetensors"), images, targets)
    # {"digit": 0.156, "colour": 1.0, "position": 1.0, "images": 494, "shift": {...}}

A text-to-image G learns only what its frozen encoder tells apart. Two measurements, both on the
canonical caption "a {colour} {digit} in the {position}":

- top-1 per attribute: for every real image holding one digit, the image's global feature is
  matched (cosine, as DAMSM scores) against the captions that differ from its own only in the digit
  (10 candidates), only in the colour (6) or only in the position (4); the rate at which its own
  caption wins. Chance is 0.1, 1/6 and 0.25. `per_digit` splits the digit's rate by the image's
  digit, and `digit_confusion[d][k]` counts images of digit d whose winning caption names k: an
  encoder that hears one digit for several (2, 3, 5 and 8 alike) makes G draw one glyph for all.
- shift: the mean distance between sentence vectors of two canonical captions that differ in that
  attribute alone, over every colour, digit and position. An attribute whose shift is small beside
  the others reaches G as a small change of its condition.

benchmarks/text2img_digits.py reports both for the benchmark's encoder (docs/text2img.md).

`condition_probe(module)` goes one step further, to what G itself receives: a StackGAN-family G
reads the sentence through its conditioning augmentation, c_hat = mu + sigma * eps, and an attribute
the encoder separates well can still drown in that noise (the benchmark reports it per checkpoint).
"""

from __future__ import annotations

import itertools
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ganscale.data.synth.captioned_digits import POSITIONS
from ganscale.metrics.digits_judge import COLOUR_NAMES, canonical_of, decode_cell, to_float

CHANCE = {"digit": 1 / 10, "colour": 1 / len(COLOUR_NAMES), "position": 1 / len(POSITIONS)}


def single_digits(targets: Tensor) -> list[tuple[int, int, str, int]]:
    """(row, quadrant, colour, digit) of every image with exactly one digit; targets [N, 4] are the
    judge's quadrant classes (0 empty, 1 + digit * 6 + colour)."""
    out = []
    for i, row in enumerate(targets.tolist()):
        full = [(q, c) for q, c in enumerate(row) if c]
        if len(full) == 1:
            q, c = full[0]
            digit, colour = decode_cell(c)
            out.append((i, q, colour, digit))
    return out


def _variants(q: int, colour: str, digit: int) -> dict[str, tuple[list[tuple[int, str, int]], int]]:
    """Per attribute: the candidate (quadrant, colour, digit) items and the index of the true one."""
    return {"digit": ([(q, colour, d) for d in range(10)], digit),
            "colour": ([(q, c, digit) for c in COLOUR_NAMES], COLOUR_NAMES.index(colour)),
            "position": ([(p, colour, digit) for p in range(len(POSITIONS))], q)}


@torch.no_grad()
def attribute_probe(pair, images: Tensor, targets: Tensor, batch: int = 256) -> dict:
    """The two measurements above for an encoder pair (`pair.text`, `pair.image`,
    `pair.encode_captions`, `pair.cfg.image_size`) on uint8 images [N, 3, H, W] with their
    quadrant targets."""
    was = pair.training
    pair.eval()
    items = canonical_items()
    index = {it: k for k, it in enumerate(items)}
    ids, lengths = pair.encode_captions([canonical_of([it]) for it in items])
    sentences = pair.text(ids, lengths).sentence.float()
    unit = F.normalize(sentences, dim=1)

    rows = single_digits(targets)
    wins = dict.fromkeys(CHANCE, 0)
    confusion = torch.zeros(10, 10, dtype=torch.long)
    size = pair.cfg.image_size
    for s in range(0, len(rows), batch):
        chunk = rows[s:s + batch]
        x = to_float(images[[r[0] for r in chunk]])
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        feats = F.normalize(pair.image(x)[1].float(), dim=1)
        for (_, q, colour, digit), f in zip(chunk, feats):
            for name, (cands, true) in _variants(q, colour, digit).items():
                best = int((unit[[index[c] for c in cands]] @ f).argmax())
                wins[name] += best == true
                if name == "digit":
                    confusion[digit, best] += 1

    pair.train(was)
    n = max(len(rows), 1)
    seen = confusion.sum(1)
    per_digit = {d: float(confusion[d, d] / seen[d]) for d in range(10) if seen[d]}
    return {**{k: v / n for k, v in wins.items()}, "images": len(rows), "chance": dict(CHANCE),
            "per_digit": per_digit, "digit_confusion": confusion.tolist(),
            "shift": attribute_shifts(sentences, items), "sentence_norm": float(sentences.norm(dim=1).mean())}


def canonical_items() -> list[tuple[int, str, int]]:
    """Every one-digit canonical content: (quadrant, colour, digit)."""
    return list(itertools.product(range(len(POSITIONS)), COLOUR_NAMES, range(10)))


def attribute_shifts(vectors: Tensor, items: list[tuple[int, str, int]]) -> dict[str, float]:
    """Per attribute, the mean distance between the vectors (one row per item of `items`) of two
    contents that differ in that attribute alone."""
    index = {it: k for k, it in enumerate(items)}
    shift = {}
    for name in CHANCE:
        d = []
        for it in items:
            cands, true = _variants(*it)[name]
            others = [index[c] for k, c in enumerate(cands) if k != true]
            d.append((vectors[others] - vectors[index[it]]).norm(dim=1))
        shift[name] = float(torch.cat(d).mean())
    return shift


@torch.no_grad()
def condition_probe(module) -> Optional[dict]:
    """What a text-to-image G's conditioning augmentation (StackGAN's CA, `G.ca`) passes on to G:
    per attribute, the mean distance between the CA means mu of two canonical captions that differ
    in that attribute alone, beside the norm of the CA noise sigma * eps (its expected value,
    sqrt(sum sigma^2)) for the same captions. An attribute whose shift is small beside the noise
    reaches G as noise: G cannot tell it apart, however well the encoder does. None when G has no
    conditioning augmentation (DF-GAN reads the sentence itself)."""
    from ganscale.conditions.text_kind import ENCODER

    ca = getattr(module.sampler, "ca", None)
    if ca is None:
        return None
    items = canonical_items()
    cond = module.net(ENCODER).encode([canonical_of([it]) for it in items], device=module.device)
    was = ca.training
    ca.eval()
    _, mu, logvar = ca(cond, None)
    ca.train(was)
    return {"mu_shift": attribute_shifts(mu.float(), items), "noise_norm": float(logvar.exp().sum(1).sqrt().mean()),
            "ca_dim": int(mu.shape[1])}
