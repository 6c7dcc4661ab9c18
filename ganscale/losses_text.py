"""Losses of the text-to-image GANs (StackGAN, StackGAN++, DF-GAN); pure functions on tensors.

    kl = ca_kl(mu, logvar)                                   # G adds KL_WEIGHT * kl
    d = matching_aware_d(LOSSES["nonsaturating"], real, wrong, fake)   # d["total"] for D
    gp = ma_gp(out, image, sentence)                         # DF-GAN's penalty, added to D's loss
    cc = colour_consistency(fake_256, fake_128)              # StackGAN++ between scales

Choices where the papers and their code differ, stated once:
- KL weight: 2.0 (`KL_WEIGHT`), the value of StackGAN's coco_s1.yml and of StackGAN-v2's config
  defaults (cfg.TRAIN.COEFF.KL); the KL is averaged over the batch *and* the code dimensions, as
  in the authors' code, so the weight means what it means there.
- Matching-aware D: real + (fake + wrong) / 2, StackGAN's and DF-GAN's weighting.
- MA-GP: k = 2, p = 6 on (real image, matched sentence), DF-GAN's values.
- Colour consistency: weight 0 for text-to-image in StackGAN-v2's configs (birds), 50 in its
  unconditional *_color configs; the covariance term is weighted 5x the mean term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ganscale.losses import GANLoss

KL_WEIGHT = 2.0
"""StackGAN's weight of the conditioning-augmentation KL in G's loss."""


def ca_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), averaged over batch and code dimensions:
    mean(-1/2 (1 + logvar - mu^2 - exp(logvar)))."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean()


def matching_aware_d(loss: GANLoss, real: Tensor, wrong: Tensor, fake: Tensor,
                     wrong_weight: float = 0.5, fake_weight: float = 0.5) -> dict[str, Tensor]:
    """D's matching-aware loss (Reed et al. 2016; StackGAN; DF-GAN):
    real = loss.d_real(D(x, c)), wrong = loss.d_fake(D(x, c_mismatched)), fake = loss.d_fake(D(G(z, c), c)),
    total = real + wrong_weight * wrong + fake_weight * fake. With `bce` the parts are softplus(-r),
    softplus(w), softplus(f); with `hinge` relu(1 - r), relu(1 + w), relu(1 + f) (batch means)."""
    parts = {"real": loss.d_real(real), "wrong": loss.d_fake(wrong), "fake": loss.d_fake(fake)}
    parts["total"] = parts["real"] + wrong_weight * parts["wrong"] + fake_weight * parts["fake"]
    return parts


def ma_gp(out: Tensor, image: Tensor, sentence: Tensor, k: float = 2.0, p: float = 6.0) -> Tensor:
    """Matching-aware zero-centred gradient penalty (DF-GAN, Tao et al. 2022):
    k * mean_i ||(d out_i / d image_i, d out_i / d sentence_i)||_2^p, on real images with their own
    captions; `out` must have been computed from `image` and `sentence` with requires_grad set.
    The graph is kept (create_graph) so the penalty trains D."""
    gi, gs = torch.autograd.grad(out.sum(), (image, sentence), create_graph=True)
    g = torch.cat([gi.flatten(1), gs.flatten(1)], dim=1)
    return k * g.norm(2, dim=1).pow(p).mean()


def mean_covariance(img: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image channel means [N, C] and channel covariance over pixels [N, C, C]."""
    flat = img.flatten(2)
    mu = flat.mean(2)
    centred = flat - mu[:, :, None]
    return mu, centred @ centred.transpose(1, 2) / flat.shape[2]


def colour_consistency(fine: Tensor, coarse: Tensor, weight: float = 1.0) -> Tensor:
    """StackGAN++'s colour-consistency term between two scales of the same sample:
    weight * (MSE(mu_fine, mu_coarse) + 5 * MSE(cov_fine, cov_coarse)); the coarse image is
    detached so only the finer branch is pulled toward the coarser one (as in the authors' code)."""
    mu1, cov1 = mean_covariance(fine)
    mu2, cov2 = mean_covariance(coarse.detach())
    return weight * (F.mse_loss(mu1, mu2) + 5.0 * F.mse_loss(cov1, cov2))


def rolled(n: int, device=None) -> Tensor:
    """Row order that pairs row i with row i+1 (mod n): the mismatched captions of StackGAN and
    DF-GAN (`cond_index(c, rolled(n))`). With groups, prefer `ganscale.text.damsm.negatives_mask`."""
    return torch.roll(torch.arange(n, device=device), -1)
