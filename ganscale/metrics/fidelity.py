"""Image metrics from extracted features. FID, KID and IS are torchmetrics' implementations,
fed with features ganscale extracted once (every metric reads the same extractor pass);
precision/recall is the k-NN manifold estimate of Kynkaanniemi et al. (2019).

    FID  ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))      lower is better
    KID  unbiased MMD^2 with the kernel (x.y / d + 1)^3, mean over random subsets
    IS   exp E_x KL(p(y|x) || p(y)), mean over splits                higher is better
    P/R  precision: share of generated features inside the real manifold (union of balls
         reaching each real feature's k-th nearest real neighbour); recall: the converse
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance


class _Given(nn.Module):
    """The 'network' handed to torchmetrics: the features were extracted already."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        return x


def feature_moments(features: Tensor) -> dict[str, Tensor]:
    """Sufficient statistics of FID: sum, sum of outer products and count (float64)."""
    f = features.double()
    return {"sum": f.sum(0), "cov_sum": f.t() @ f, "num": torch.tensor(len(f))}


def fid(real: dict[str, Tensor], fake_features: Tensor) -> float:
    """FID between the real moments (feature_moments) and generated features."""
    m = FrechetInceptionDistance(feature=_Given(fake_features.shape[1]), reset_real_features=False,
                                 sync_on_compute=False)
    m.real_features_sum = real["sum"].double().to(m.real_features_sum.device)
    m.real_features_cov_sum = real["cov_sum"].double().to(m.real_features_sum.device)
    m.real_features_num_samples = real["num"].long().to(m.real_features_sum.device)
    m.update(fake_features.double(), real=False)
    return float(m.compute())


def kid(real_features: Tensor, fake_features: Tensor, subsets: int, subset_size: int, seed: int = 0) -> tuple[float, float]:
    size = min(subset_size, len(real_features), len(fake_features))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "saves all extracted features in buffer": they are given already
        m = KernelInceptionDistance(feature=_Given(fake_features.shape[1]), subsets=subsets, subset_size=size,
                                    sync_on_compute=False)
    m.update(real_features.double(), real=True)
    m.update(fake_features.double(), real=False)
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws the subsets from the global RNG
        torch.manual_seed(seed)
        mean, std = m.compute()
    return float(mean), float(std)


def inception_score(logits: Tensor, splits: int, seed: int = 0) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as above
        m = InceptionScore(feature=_Given(logits.shape[1]), splits=splits, sync_on_compute=False)
    m.update(logits.double())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = m.compute()
    return float(mean), float(std)


def _kth_neighbour_radius(feats: Tensor, k: int, chunk: int) -> Tensor:
    """Distance from each row to its k-th nearest other row."""
    radii = []
    for i in range(0, len(feats), chunk):
        d = torch.cdist(feats[i:i + chunk], feats)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # +1: the row itself is at distance 0
    return torch.cat(radii)


def _inside(query: Tensor, ref: Tensor, radii: Tensor, chunk: int) -> Tensor:
    """For each query row: is it within radii[j] of some ref row j."""
    out = []
    for i in range(0, len(query), chunk):
        d = torch.cdist(query[i:i + chunk], ref)
        out.append((d <= radii.unsqueeze(0)).any(dim=1))
    return torch.cat(out)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN manifold estimates."""
    real, fake = real.float(), fake.float()
    precision = _inside(fake, real, _kth_neighbour_radius(real, k, chunk), chunk).float().mean()
    recall = _inside(real, fake, _kth_neighbour_radius(fake, k, chunk), chunk).float().mean()
    return float(precision), float(recall)


def class_accuracy(logits: Tensor, labels: Tensor, num_classes: Optional[int] = None) -> tuple[float, list[float]]:
    """Share of class-c samples predicted as c, per class and averaged over the classes present."""
    num_classes = num_classes or logits.shape[1]
    pred = logits.argmax(1)
    per_class = []
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            per_class.append(float((pred[mask] == c).float().mean()))
    return (sum(per_class) / len(per_class) if per_class else float("nan")), per_class


def mode_coverage(channel_logits: Tensor) -> tuple[int, float, int]:
    """Stacked MNIST (Metz et al. 2017; VEEGAN/PacGAN protocol): each channel's digit is classified,
    the digit tuple is the mode (10^C modes). Returns (modes with at least one sample,
    KL(p_modes || uniform), number of modes)."""
    digits = channel_logits.argmax(-1)  # [N, C]
    k, c = channel_logits.shape[-1], channel_logits.shape[1]
    num_modes = k**c
    mode = (digits * (k ** torch.arange(c - 1, -1, -1))).sum(1)
    p = torch.bincount(mode, minlength=num_modes).double()
    p = p / p.sum()
    nz = p > 0
    kl = float((p[nz] * torch.log(p[nz] * num_modes)).sum())
    return int(nz.sum()), kl, num_modes
