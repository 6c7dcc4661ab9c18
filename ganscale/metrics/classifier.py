"""A small digit classifier that ganscale trains itself: the feature extractor for FID/KID/PR on
MNIST-like data (where InceptionV3 features mean little) and the judge of class-conditional
samples and of Stacked-MNIST modes.

    ganscale classifier train --data ../shared/data/mnist --out classifiers/mnist.pt
    ganscale classifier test  --data ../shared/data/mnist --model classifiers/mnist.pt

Inputs are uint8 images [N, 1, 28, 28]; other sizes are resized. Features are the 128-d
penultimate activations, logits the 10 class scores.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganscale.data.idx import IDX_FILES, load_digits  # noqa: F401  (the IDX reader lives with the data)
from ganscale.errors import UserError
from ganscale.utils.files import atomic_torch_save

FORMAT = "ganscale-classifier-v1"
class DigitClassifier(nn.Module):
    """conv32-pool-conv64-pool-conv128 (BatchNorm, ReLU) -> linear 128 (features) -> linear 10."""

    num_features = 128

    def __init__(self, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        self.num_classes, self.image_size = num_classes, image_size
        self.num_logits = num_classes

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.convs = nn.Sequential(*block(1, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 128))
        self.fc = nn.Linear(128 * (image_size // 4) ** 2, self.num_features)
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(self.num_features, num_classes)

    @staticmethod
    def prepare(x: Tensor, image_size: int) -> Tensor:
        """uint8 [N, 1, H, W] -> float in [-1, 1] at image_size."""
        h = x.float() / 127.5 - 1.0
        if h.shape[-1] != image_size or h.shape[-2] != image_size:
            h = F.interpolate(h, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
        return h

    def forward_float(self, h: Tensor) -> tuple[Tensor, Tensor]:
        feats = F.relu(self.fc(self.convs(h).flatten(1)))
        return feats, self.out(self.drop(feats))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """uint8 [N, 1, H, W] -> {"features": [N, 128], "logits": [N, num_classes]}."""
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"expected uint8 images [N, 1, H, W], got {x.dtype} {tuple(x.shape)}")
        feats, logits = self.forward_float(self.prepare(x, self.image_size))
        return {"features": feats, "logits": logits}


# ------------------------------------------------------------------------------------ data
# ------------------------------------------------------------------------------------ training
@dataclass
class TrainResult:
    model: DigitClassifier
    test_accuracy: float
    seconds: float


def _shift(x: Tensor, g: torch.Generator, max_shift: int = 2) -> Tensor:
    """Random translation by up to max_shift pixels (pad with background, crop back)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2,), generator=g).tolist()  # one shift per batch: cheap
    return padded[:, :, dy:dy + h, dx:dx + w]


@torch.no_grad()
def accuracy(model: DigitClassifier, images: Tensor, labels: Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(images), batch):
        logits = model(images[i:i + batch])["logits"]
        correct += int((logits.argmax(1) == labels[i:i + batch]).sum())
    return correct / max(1, len(images))


def train_classifier(train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], epochs: int = 3,
                     batch_size: int = 128, lr: float = 2e-3, seed: int = 0, log=print) -> TrainResult:
    """Adam with a one-cycle learning-rate schedule and random shifts; returns the model and its test accuracy."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x_all, y_all = train
    num_classes = int(y_all.max()) + 1
    model = DigitClassifier(num_classes, image_size=x_all.shape[-1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(x_all) + batch_size - 1) // batch_size)
    # OneCycleLR's warm-up phase must span more than one step (pct_start * steps > 1), or its
    # interpolation divides by zero: a handful of steps (a --limit check) trains at a constant lr.
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
             if steps > 10 else torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0))
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_all), generator=g)
        total = 0.0
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            h = _shift(DigitClassifier.prepare(x_all[idx], model.image_size), g)
            loss = F.cross_entropy(model.forward_float(h)[1], y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        acc = accuracy(model, *test)
        log(f"epoch {epoch + 1}/{epochs}: train loss {total / len(perm):.4f}, test accuracy {acc:.4f}")
    model.eval()
    return TrainResult(model, acc, time.perf_counter() - t0)


def save_classifier(result: TrainResult, path: str, source: str) -> None:
    m = result.model
    payload = {"format": FORMAT, "num_classes": m.num_classes, "image_size": m.image_size,
               "test_accuracy": result.test_accuracy, "trained_on": source, "state_dict": m.state_dict()}
    atomic_torch_save(payload, path)


def load_classifier(path: str, what: str = "eval.classifier_path") -> DigitClassifier:
    if not path or not os.path.isfile(path):
        where = f"{what}={path!r} does not exist" if path else f"{what} is not set"
        raise UserError(f"{where}: train the classifier first with `ganscale classifier train --data "
                        f"DIR_WITH_IDX_FILES --out {path or 'classifier.pt'}` (the MNIST or Fashion-MNIST folder "
                        f"of the run's data) and pass its path")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError("not a ganscale classifier file")
        model = DigitClassifier(payload["num_classes"], payload["image_size"])
        model.load_state_dict(payload["state_dict"])
    except Exception as e:
        raise UserError(f"{what}={path!r} is not a classifier saved by `ganscale classifier train` ({e})") from None
    model.test_accuracy = payload.get("test_accuracy")
    return model.eval().requires_grad_(False)
