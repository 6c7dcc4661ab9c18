"""InfoGAN's metrics and figures: the categorical code's unsupervised accuracy on labelled digits
(Q's argmax under the best one-to-one assignment of codes to classes, Hungarian), samples with
some codes fixed, and the traversal figures.

    ganscale eval RUN                                             # {"cat_accuracy": ..., "assignment": [...]}
    ganscale sample RUN --code cat=3 --code c0=-1.5 --num 64 --out grid.png
"""

from __future__ import annotations

import copy
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from ganscale.errors import UserError

SWEEP = (-2.0, 2.0)
"""Range of the continuous code in the traversal figures (beyond the prior's [-1, 1], as in the paper)."""
SWEEP_STEPS = 10


def hungarian_accuracy(pred: np.ndarray, labels: np.ndarray, k: Optional[int] = None) -> tuple[float, list[int]]:
    """Accuracy of `pred` (code indices) under the one-to-one code -> label map that maximises it
    (scipy's linear_sum_assignment on the confusion counts), and that map (code i -> map[i])."""
    from scipy.optimize import linear_sum_assignment

    k = k or int(max(pred.max(), labels.max())) + 1
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (pred, labels), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    mapping = [int(c) for _, c in sorted(zip(rows, cols))]
    return float(counts[rows, cols].sum()) / len(labels), mapping


@torch.no_grad()
def predict_codes(D: nn.Module, Q: nn.Module, x: Tensor, batch: int = 1000, batch_stats: bool = False) -> Tensor:
    """Q's most likely category for images x in [-1, 1]. D and Q in eval mode (BatchNorm's running
    statistics, which mix real and generated batches), or with `batch_stats` as in training: each
    chunk of `batch` test images normalised by its own statistics (the reference's D only ever runs
    in its train phase), on copies so that the nets' running statistics stay as they were."""
    if batch_stats:
        D, Q = copy.deepcopy(D).train(), copy.deepcopy(Q).train()
    modes = D.training, Q.training
    if not batch_stats:
        D.eval(), Q.eval()
    out = [Q(D(x[i:i + batch])[1])[0].argmax(1) for i in range(0, len(x), batch)]
    D.train(modes[0]), Q.train(modes[1])
    return torch.cat(out)


def categorical_accuracy(D: nn.Module, Q: nn.Module, folder: str, split: str = "test") -> dict:
    """{"cat_accuracy", "assignment"} with D and Q in eval mode, and "cat_accuracy_batch_stats"
    with BatchNorm on batch statistics (see predict_codes)."""
    from ganscale.metrics.ssl import load_split

    x, y = load_split(folder, split)
    return categorical_scores(D, Q, x, y.numpy())


def categorical_scores(D: nn.Module, Q: nn.Module, x, y, codes=None) -> dict:
    """`categorical_accuracy` on images `x` with labels `y` (numpy) already loaded; `codes`: Q's
    eval-mode codes of `x` when the caller has them (predict_codes), so they are not computed twice."""
    codes = predict_codes(D, Q, x).numpy() if codes is None else codes
    acc, mapping = hungarian_accuracy(codes, y, Q.num_categories)
    acc_batch, _ = hungarian_accuracy(predict_codes(D, Q, x, batch_stats=True).numpy(), y, Q.num_categories)
    return {"cat_accuracy": acc, "assignment": mapping, "cat_accuracy_batch_stats": acc_batch, "num_test": len(y)}


def parse_codes(items: list[str], G) -> dict:
    """--code cat=3 --code c0=-1.5 -> {"cat": 3, "c0": -1.5}, checked against G's codes."""
    codes = {}
    names = ["cat", *(f"c{j}" for j in range(G.num_continuous))]
    for item in items:
        name, _, value = item.partition("=")
        if name not in names or not value:
            raise UserError(f"--code {item!r}: give NAME=VALUE with NAME one of {', '.join(names)}")
        try:
            codes[name] = int(value) if name == "cat" else float(value)
        except ValueError:
            raise UserError(f"--code {item!r}: {'an integer category' if name == 'cat' else 'a number'} expected") \
                from None
        if name == "cat" and not 0 <= codes[name] < G.num_categories:
            raise UserError(f"--code {item!r}: categories are 0..{G.num_categories - 1}")
    return codes


@torch.no_grad()
def sample_with_codes(G, n: int, seed: int, codes: dict) -> Tensor:
    """n samples (CPU, [-1, 1]) with the named codes fixed and everything else drawn (seeded)."""
    g = torch.Generator().manual_seed(seed)
    noise, cat, cont = G.split_latent(G.sample_z(n, generator=g))
    if "cat" in codes:
        cat = torch.full_like(cat, codes["cat"])
    for j in range(G.num_continuous):
        if f"c{j}" in codes:
            cont[:, j] = codes[f"c{j}"]
    was = G.training
    G.eval()
    x = G(G.join_latent(noise, cat, cont)).float().cpu()
    G.train(was)
    return x


@torch.no_grad()
def traversal(G, j: int, seed: int) -> Tensor:
    """[K * SWEEP_STEPS] images: row = category, column = continuous code j swept over SWEEP, the
    other codes 0 and one noise vector for the whole figure."""
    k, steps = G.num_categories, SWEEP_STEPS
    noise = G.split_latent(G.sample_z(1, generator=torch.Generator().manual_seed(seed)))[0].expand(k * steps, -1)
    cat = torch.arange(k).repeat_interleave(steps)
    cont = torch.zeros(k * steps, G.num_continuous)
    cont[:, j] = torch.linspace(*SWEEP, steps).repeat(k)
    was = G.training
    G.eval()
    x = G(G.join_latent(noise, cat, cont)).float().cpu()
    G.train(was)
    return x
