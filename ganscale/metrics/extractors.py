"""Pluggable feature extractors for image metrics. Each takes uint8 images [N, C, H, W] and
returns {"features": [N, F]} and, when it classifies, {"logits": [N, K]}. `fingerprint` names
the network and its weights (a file hash) for the reference-statistics cache key.

    inception   InceptionV3 (FID/KID/IS protocol); eval.inception_path = the weight file
    classifier  ganscale's digit classifier (MNIST-like data); eval.classifier_path = its file
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ganscale.metrics.classifier import DigitClassifier, load_classifier
from ganscale.data.pack.writer import sha256_file as file_sha256
from ganscale.metrics.inception import load_inception
from ganscale.registry import EXTRACTORS


class FeatureExtractor(nn.Module):
    """Wraps a network with the metric-facing interface; no gradients, always in eval mode."""

    def __init__(self, name: str, net: nn.Module, num_features: int, num_logits: int, fingerprint: str,
                 channels: int):
        super().__init__()
        self.name, self.net = name, net.eval().requires_grad_(False)
        self.num_features, self.num_logits, self.fingerprint = num_features, num_logits, fingerprint
        self.channels = channels
        """Channels the network reads: images with other channel counts are adapted in `forward`."""

    def train(self, mode: bool = True):  # stays in eval mode (BatchNorm statistics, dropout)
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.dtype != torch.uint8:
            raise ValueError(f"feature extractors take uint8 images, got {x.dtype}")
        c = x.shape[1]
        if c == self.channels:
            return self.net(x)
        if self.channels == 3 and c == 1:  # grayscale into an RGB network: repeat the channel
            return self.net(x.expand(-1, 3, -1, -1))
        if self.channels == 1:
            # several gray channels (e.g. Stacked MNIST): run each through the network and
            # concatenate the features; logits per channel are kept as [N, C, K] for mode counting
            outs = [self.net(x[:, i:i + 1]) for i in range(c)]
            return {"features": torch.cat([o["features"] for o in outs], 1),
                    "channel_logits": torch.stack([o["logits"] for o in outs], 1)}
        raise ValueError(f"the {self.name} extractor reads {self.channels}-channel images, got {c} channels")


ExtractorBuilder = Callable[["EvalConfig"], FeatureExtractor]  # noqa: F821
"""What ganscale.registry.EXTRACTORS holds: eval config -> extractor (eval.extractor names it)."""


def build_inception(cfg) -> FeatureExtractor:
    net = load_inception(cfg.inception_path)
    return FeatureExtractor("inception", net, net.num_features, net.num_logits,
                            f"inception-2015-12-05:{file_sha256(cfg.inception_path)}", channels=3)


def build_classifier(cfg) -> FeatureExtractor:
    net: DigitClassifier = load_classifier(cfg.classifier_path)
    return FeatureExtractor("classifier", net, net.num_features, net.num_logits,
                            f"digit-classifier:{file_sha256(cfg.classifier_path)}", channels=1)


def build_extractor(cfg) -> FeatureExtractor:
    return EXTRACTORS[cfg.extractor](cfg)
