"""Mode coverage of 2D mixtures, the PacGAN/VEEGAN protocol.

Draw 2,500 samples. A sample is high quality (HQ) if it lies within 3 standard deviations of its
nearest mode's mean. A mode is captured if at least one HQ sample is nearest to it. The KL is
KL(p || uniform) of p = the histogram of every sample's nearest mode.
"""

from __future__ import annotations

import math

import torch

NUM_EVAL_SAMPLES = 2500
HQ_STDS = 3.0


def mode_metrics(samples: torch.Tensor, means: torch.Tensor, std: float) -> dict:
    samples = samples.detach().float().cpu()
    dist = torch.cdist(samples, means.float())  # [N, K]
    d_min, nearest = dist.min(dim=1)
    hq = d_min <= HQ_STDS * std
    k = len(means)
    counts = torch.bincount(nearest, minlength=k).double()
    p = counts / counts.sum()
    nz = p > 0
    kl = float((p[nz] * torch.log(p[nz] * k)).sum())
    captured = torch.unique(nearest[hq]).numel()
    return {
        "modes": int(captured),
        "num_modes": int(k),
        "hq_fraction": float(hq.double().mean()),
        "kl": kl if math.isfinite(kl) else float(math.log(k)),
    }
