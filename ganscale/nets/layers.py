"""Building blocks shared by the image families (DCGAN, SNGAN, BigGAN): conditional BatchNorm,
self-attention, the projection head of a conditional D, weight init and orthogonal regularization."""

from __future__ import annotations

from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose gain and bias are linear functions of a condition vector c:
    y = BN(x) * (1 + W_gain c) + W_bias c.

    With c = one_hot(label) this is the per-class gain/bias of categorical conditional BN
    (SNGAN/cGAN projection); with c = [shared_embedding(label), z_chunk] it is BigGAN's.
    cond_dim = 0 gives a plain BatchNorm with learned affine parameters."""

    def __init__(self, num_features: int, cond_dim: int, eps: float = 1e-5):
        super().__init__()
        self.cond_dim = cond_dim
        self.bn = nn.BatchNorm2d(num_features, eps=eps, affine=cond_dim == 0)
        if cond_dim > 0:
            self.gain = nn.Linear(cond_dim, num_features, bias=False)
            self.bias = nn.Linear(cond_dim, num_features, bias=False)
            # start as a plain BN: gain 1 + 0, bias 0
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, c: Optional[Tensor] = None) -> Tensor:
        h = self.bn(x)
        if self.cond_dim == 0:
            return h
        gain = 1.0 + self.gain(c)[:, :, None, None]
        bias = self.bias(c)[:, :, None, None]
        return h * gain + bias


class SelfAttention2d(nn.Module):
    """Self-attention over spatial positions (SAGAN, Zhang et al. 2019, as used in BigGAN):
    keys and values are max-pooled 2x to save memory; the output is x + gamma * attention, with
    gamma starting at 0 so the block begins as the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.key_ch = max(1, channels // 8)
        self.value_ch = max(1, channels // 2)
        self.theta = nn.Conv2d(channels, self.key_ch, 1, bias=False)
        self.phi = nn.Conv2d(channels, self.key_ch, 1, bias=False)
        self.g = nn.Conv2d(channels, self.value_ch, 1, bias=False)
        self.o = nn.Conv2d(self.value_ch, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        theta = self.theta(x).flatten(2)                           # [n, k, hw]
        pool = (lambda t: F.max_pool2d(t, 2)) if min(h, w) >= 2 else (lambda t: t)
        phi = pool(self.phi(x)).flatten(2)                         # [n, k, hw/4]
        g = pool(self.g(x)).flatten(2)                             # [n, v, hw/4]
        beta = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # [n, hw, hw/4]
        o = (g @ beta.transpose(1, 2)).view(n, self.value_ch, h, w)
        return x + self.gamma * self.o(o)


class ProjectionHead(nn.Module):
    """Output of a conditional D (projection discriminator, Miyato & Koyama 2018):
    D(x, y) = w^T phi(x) + embed(y)^T phi(x). Unconditional (num_classes=0): w^T phi(x).
    A packed D (PacGAN, model.remedies.pack=m) passes y as [N/m, m], the labels of each pack's
    members; the pack's class vector is the sum of their embeddings, so a pack is judged against
    every label it carries (for m = 1 this is the projection above)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.linear = nn.Linear(in_features, 1)
        self.embed = nn.Embedding(num_classes, in_features) if num_classes > 0 else None

    def forward(self, h: Tensor, y: Optional[Tensor]) -> Tensor:
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("this D is class-conditional: pass labels y")
            e = self.embed(y)
            e = e.sum(dim=1) if y.dim() == 2 else e  # packed labels [N/m, m] -> one vector per pack
            out = out + (e * h).sum(dim=1)
        return out


def class_count(model_cfg, info) -> int:
    """Classes the nets condition on: the data's, unless model.conditional is false."""
    return info.num_classes if model_cfg.conditional else 0


def one_hot(y: Optional[Tensor], num_classes: int, dtype=torch.float32) -> Optional[Tensor]:
    if num_classes == 0:
        return None
    if y is None:
        raise ValueError("this G is class-conditional: pass labels y")
    return F.one_hot(y.long(), num_classes).to(dtype)


def init_weights(module: nn.Module, kind: str) -> None:
    """Initialise conv/linear/embedding weights: `normal` N(0, 0.02) (DCGAN), `xavier` (SNGAN) or
    `ortho` (BigGAN, every layer incl. the conditional-BN projections, which must not be zero
    under spectral norm). Biases start at 0. With `normal`/`xavier` the conditional-BN projections
    start at zero, i.e. every class starts from gain 1 and bias 0 (as per-class BN parameters do)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            w = m.weight
            if kind == "normal":
                nn.init.normal_(w, 0.0, 0.02)
            elif kind == "xavier":
                nn.init.xavier_uniform_(w)
            elif kind == "ortho":
                nn.init.orthogonal_(w)
            else:
                raise ValueError(f"unknown init {kind!r}")
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    if kind != "ortho":
        for m in module.modules():
            if isinstance(m, ConditionalBatchNorm2d) and m.cond_dim > 0:
                nn.init.zeros_(m.gain.weight)
                nn.init.zeros_(m.bias.weight)


def raw_weight(m: nn.Module) -> Tensor:
    """The trainable weight of m: the unnormalised original under a spectral-norm parametrization."""
    if hasattr(m, "parametrizations") and "weight" in m.parametrizations:
        return m.parametrizations.weight.original
    return m.weight


def orthogonal_penalty(weights: Iterable[Tensor]) -> Tensor:
    """BigGAN's orthogonal regularization (Brock et al. 2019, eq. 3) without the beta factor:
    sum over W of ||W W^T * (1 - I)||_F^2, W reshaped to [out, in * kh * kw]. Only the
    off-diagonal is penalised, so filters are pushed towards orthogonality but keep their norms."""
    total: Optional[Tensor] = None
    for w in weights:
        w = w.flatten(1)
        gram = w @ w.t()
        off = gram - torch.diag_embed(torch.diagonal(gram))
        term = off.pow(2).sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total
