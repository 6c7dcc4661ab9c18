"""The research games' objectives, one small function each, formula in the docstring.

Semi-supervised GAN (Salimans et al. 2016; openai/improved-gan train_mnist_feature_matching.py):
D has K class logits l(x) and a fake class with logit 0, so with Z(x) = sum_k exp l_k(x)
p(real | x) = Z / (1 + Z) and p(fake | x) = 1 / (1 + Z).

InfoGAN (Chen et al. 2016; openai/InfoGAN infogan/algos/infogan_trainer.py): the variational lower
bound L_I of the mutual information between the codes c and G(z, c), from Q's posterior.
"""

from __future__ import annotations

import math
from typing import Callable

import torch.nn.functional as F
from torch import Tensor


def ssl_supervised_loss(logits_lab: Tensor, y: Tensor) -> Tensor:
    """mean over labelled rows of -l_y + logsumexp(l): the K-class cross-entropy."""
    return F.cross_entropy(logits_lab, y)


def ssl_unsupervised_loss(logits_unl: Tensor, logits_fake: Tensor) -> Tensor:
    """-E[log p(real|x_unl)] and -E[log p(fake|G(z))], halved as in the reference:
    0.5 mean(-lse(l_unl) + softplus(lse(l_unl))) + 0.5 mean(softplus(lse(l_fake)))."""
    lse_unl, lse_fake = logits_unl.logsumexp(1), logits_fake.logsumexp(1)
    return 0.5 * (F.softplus(lse_unl) - lse_unl).mean() + 0.5 * F.softplus(lse_fake).mean()


def feature_matching(f_real: Tensor, f_fake: Tensor, mean: Callable[[Tensor], Tensor] = lambda t: t) -> Tensor:
    """mean_j (E[f_j(x_unl)] - E[f_j(G(z))])^2, the reference's MNIST G loss
    (T.mean(T.square(mom_gen - mom_real))). `mean` makes the per-rank batch means global (the
    engine's m.global_mean): the loss is not linear in them."""
    return (mean(f_real.mean(0)) - mean(f_fake.mean(0))).square().mean()


# ------------------------------------------------------------------------ InfoGAN
def infogan_mi_categorical(logits: Tensor, code: Tensor) -> Tensor:
    """L_I of the categorical code: H(c) - E[-log Q(c|x)] = ln K - CE(Q's logits, c) for a uniform
    prior over K categories (openai/InfoGAN's disc_mi_est); it rises toward ln K."""
    return math.log(logits.shape[1]) - F.cross_entropy(logits, code)


def infogan_mi_continuous(mean: Tensor, code: Tensor) -> Tensor:
    """L_I of the continuous codes under the reference's model, a unit-variance Gaussian for both the
    prior and Q: E[sum_j 0.5 c_j^2 - 0.5 (c_j - mu_j)^2] (cont_ent - cont_cross_ent; the
    log(2 pi) terms cancel)."""
    return (0.5 * code.square() - 0.5 * (code - mean).square()).sum(1).mean()


__all__ = ["feature_matching", "infogan_mi_categorical", "infogan_mi_continuous", "ssl_supervised_loss",
           "ssl_unsupervised_loss"]
