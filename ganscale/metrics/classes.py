"""What a classifier says about a generator's samples as a whole: the class histogram, its KL
divergence to the uniform distribution over the classes, and the mean confidence.

    from ganscale.metrics.classes import class_summary
    class_summary(classifier_logits)   # {"histogram": [...], "classes_seen": 10, "kl_uniform": 0.01, "confidence": 0.97}

Used by benchmarks/binary_mnist.py (docs/discrete.md); a G that drops digits shows a histogram
with holes and a large KL, a G of blurry strokes a low confidence.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def class_histogram(logits: Tensor) -> Tensor:
    """Share of samples whose predicted class (argmax) is c, for every class c."""
    return torch.bincount(logits.argmax(1), minlength=logits.shape[1]).double() / len(logits)


def kl_to_uniform(histogram: Tensor) -> float:
    """KL(histogram || uniform) in nats = log K - H(histogram); 0 when every class is equally common."""
    p = histogram.double()
    nz = p[p > 0]
    return float(math.log(len(p)) + (nz * nz.log()).sum())


def mean_confidence(logits: Tensor) -> float:
    """Mean over samples of the classifier's largest softmax probability."""
    return float(torch.softmax(logits.double(), 1).max(1).values.mean())


def class_summary(logits: Tensor) -> dict:
    h = class_histogram(logits)
    return {"histogram": [round(float(v), 4) for v in h], "classes_seen": int((h > 0).sum()),
            "kl_uniform": kl_to_uniform(h), "confidence": mean_confidence(logits)}
