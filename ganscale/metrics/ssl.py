"""Classifier metrics of the semi-supervised GAN's D: predicted classes and test errors.

    ganscale predict RUN --data ../shared/data/mnist --split test --out preds.npy
    ganscale eval RUN              # {"test_errors": ..., "test_error": ..., "num_test": 10000}
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


@torch.no_grad()
def predict_classes(D: nn.Module, x: Tensor, batch: int = 2000) -> Tensor:
    """int64 argmax classes of D's logits (D in eval mode: no noise) for images x in [-1, 1]."""
    was_training = D.training
    D.eval()
    device = next(D.parameters()).device
    out = [D(x[i:i + batch].to(device))[0].argmax(1).cpu() for i in range(0, len(x), batch)]
    D.train(was_training)
    return torch.cat(out).long() if out else torch.empty(0, dtype=torch.long)


def load_split(folder: str, split: str) -> tuple[Tensor, Tensor]:
    """Images of an IDX split as float in [-1, 1] [N, 1, 28, 28], and their labels."""
    from ganscale.data.digits import to_unit_range
    from ganscale.data.idx import load_digits

    images, labels = load_digits(folder, split)
    return to_unit_range(images), labels


def test_error(predict, module, folder: str, split: str = "test") -> dict:
    """Errors of predict(module, images) on the split: {"test_errors", "test_error", "num_test"}."""
    x, y = load_split(folder, split)
    errors = int((predict(module, x) != y).sum())
    return {"test_errors": errors, "test_error": errors / len(y), "num_test": len(y)}
