"""Mode coverage of 2D mixtures, the PacGAN/VEEGAN protocol.

Draw 2,500 samples. A sample is high quality (HQ) if it lies within 3 standard deviations of its
nearest mode's mean (VEEGAN, Srivastava et al. 2017, section 5.1; PacGAN, Lin et al. 2018,
section 5). A mode is captured if at least one HQ sample is nearest to it.

KL is PacGAN's "reverse KL", KL(p || uniform) = sum_k p_k log(K p_k), where p is the histogram
over the K modes of the *high-quality* samples, each counted at its nearest mode. This follows
the PacGAN authors' evaluation code (synthetic_data_experiments, MetricLogger: the per-mode
histogram `detail_of_coverage` only counts samples within 3 std of their nearest mode, and the
logged "entropy of coverage" H(p) gives the reverse KL as log K - H(p)). Low-quality samples
therefore count against % HQ, not against KL. With no HQ sample at all p is undefined; we report
log K, the KL of a generator that collapsed onto a single mode (the largest value KL(p || U) takes).
"""

from __future__ import annotations

import math

import torch

NUM_EVAL_SAMPLES = 2500
HQ_STDS = 3.0


def mode_metrics(samples: torch.Tensor, means: torch.Tensor, std: float) -> dict:
    samples = samples.detach().double().cpu()
    dist = torch.cdist(samples, means.double())  # [N, K]
    d_min, nearest = dist.min(dim=1)
    hq = d_min < HQ_STDS * std
    k = len(means)
    counts = torch.bincount(nearest[hq], minlength=k).double()
    if counts.sum() > 0:
        p = counts / counts.sum()
        nz = p > 0
        kl = float((p[nz] * torch.log(p[nz] * k)).sum())
    else:
        kl = math.log(k)
    return {
        "modes": int((counts > 0).sum()),
        "num_modes": int(k),
        "hq_fraction": float(hq.double().mean()),
        "kl": kl,
    }
