"""Mode-collapse remedies from the literature, as config switches (`model.remedies.*`).

    ganscale train configs/toy/ring.yaml model.remedies.pack=4
    ganscale train configs/toy/ring.yaml model.remedies.minibatch_discrimination.enabled=true
    ganscale train configs/toy/ring.yaml model.remedies.minibatch_stddev.enabled=true
    ganscale train configs/toy/ring.yaml model.remedies.feature_matching.weight=1 \
        model.remedies.feature_matching.adversarial_weight=0      # feature matching alone

D layers act on the whole batch, so they live inside D and work with every loss (the loss only
ever sees one logit per D input):

- `pack_samples`: PacGAN (Lin et al. 2018). D judges packs of m samples concatenated along the
  feature/channel axis. D is always called on an all-real or an all-fake batch, so every pack is
  pure; consecutive samples form a pack, and they are independent draws.
- `MinibatchStdDev`: ProGAN (Karras et al. 2018) / StyleGAN. Appends the standard deviation of
  each feature across a group of samples, averaged over the feature (and spatial) axes.
- `MinibatchDiscrimination`: Salimans et al. 2016, section 3.2. Features f(x_i) times a learned
  tensor T give M_i (B kernels of dimension C); o(x_i)_b = sum_{j != i} exp(-||M_i,b - M_j,b||_1),
  concatenated to f(x_i).
- `feature_matching_loss`: Salimans et al. 2016, section 3.1. ||E f(x) - E f(G(z))||_2^2 on an
  intermediate D layer (the one D returns with return_features=True), alone or mixed with the
  adversarial G loss.

The layers are generic: they take [N, F] features (MLP) or [N, C, H, W] maps (conv families);
every D family builds them (see docs/mode_collapse.md for where each sits in each D).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ganscale.errors import UserError
from ganscale.nets.config import (  # noqa: F401  (the configs live torch-free; re-exported here)
    FeatureMatchingConfig,
    MinibatchDiscriminationConfig,
    MinibatchStdDevConfig,
    RemediesConfig,
)


# ---------------------------------------------------------------- layers
def pack_samples(x: Tensor, m: int) -> Tensor:
    """PacGAN packing: [N, C, *rest] -> [N/m, m*C, *rest]; pack i = samples i*m .. i*m+m-1,
    concatenated along axis 1 (features for vectors, channels for images)."""
    if m == 1:
        return x
    n = x.shape[0]
    if n % m:
        raise UserError(f"packing: D got a batch of {n}, not divisible by model.remedies.pack={m}; "
                        "use a batch size that is a multiple of the pack")
    return x.reshape(n // m, m * x.shape[1], *x.shape[2:])


class MinibatchStdDev(nn.Module):
    """ProGAN's minibatch standard deviation: [N, C, *spatial] -> [N, C + num_features, *spatial].

    The batch is split into groups of G = min(group_size, N) samples (sample i is in group i mod
    N/G, as in StyleGAN) and the C features into num_features slices. For every group and slice:
    the standard deviation of each feature (and position) over the G samples, averaged over the
    slice's features and positions, is appended as a constant feature map to the group's samples.
    """

    def __init__(self, group_size: int = 4, num_features: int = 1, eps: float = 1e-8):
        super().__init__()
        self.group_size, self.num_features, self.eps = group_size, num_features, eps

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_features={self.num_features}"

    def forward(self, x: Tensor) -> Tensor:
        n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
        g, f = min(self.group_size, n), self.num_features
        if n % g or c % f:
            raise UserError(f"minibatch stddev: batch {n} must be divisible by the group {g} and "
                            f"{c} features by num_features={f}")
        y = x.reshape(g, n // g, f, c // f, *spatial)            # [G, N/G, F, c, *s]
        y = y - y.mean(dim=0)                                     # centre over the group
        y = (y.square().mean(dim=0) + self.eps).sqrt()            # [N/G, F, c, *s] stddev
        y = y.flatten(2).mean(dim=2)                              # [N/G, F] average over features
        y = y.repeat(g, 1)                                        # [N, F]: row i is group i mod N/G
        y = y.reshape(n, f, *([1] * len(spatial))).expand(n, f, *spatial)
        return torch.cat([x, y], dim=1)


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016: [N, *] -> [N, in_features + num_kernels].

    f = x flattened to [N, A]; M = f T reshaped to [N, B, C]; c_b(i, j) = exp(-||M_ib - M_jb||_1);
    o(x_i)_b = sum_{j != i} c_b(i, j) (the paper's sum includes j = i, a constant 1 that the
    authors' code leaves out; so do we); output [f, o].
    """

    def __init__(self, in_features: int, num_kernels: int = 16, kernel_dim: int = 4, init_std: float = 0.05):
        super().__init__()
        self.in_features, self.num_kernels, self.kernel_dim = in_features, num_kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, num_kernels * kernel_dim) * init_std)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_kernels={self.num_kernels}, kernel_dim={self.kernel_dim}"

    def forward(self, x: Tensor) -> Tensor:
        f = x.flatten(1)
        n = f.shape[0]
        # kernel-major and contiguous, [B, C, N]: every difference below is then a [B, N, N] op over
        # contiguous rows (about 2.5x faster on CPU than [N, N, B] temporaries, and as fast as
        # torch.cdist(p=1), which has no double backward for R1/GP/unrolling through this layer)
        m = (f @ self.T).view(n, self.num_kernels, self.kernel_dim).permute(1, 2, 0).contiguous()
        l1 = sum((m[:, c, :, None] - m[:, c, None, :]).abs() for c in range(self.kernel_dim))  # [B, N, N]
        # the j = i term is exp(-0) = 1 exactly (and contributes no gradient: d|t|/dt = 0 at t = 0)
        o = (torch.exp(-l1).sum(dim=2) - 1).t()                               # [N, B]
        return torch.cat([f, o], dim=1)


def stddev_layer(cfg: "RemediesConfig | None") -> tuple[Optional[MinibatchStdDev], int]:
    """The minibatch-stddev layer enabled in `cfg` (or None) and the features/maps it appends."""
    if cfg is None or not cfg.minibatch_stddev.enabled:
        return None, 0
    msd = cfg.minibatch_stddev
    return MinibatchStdDev(msd.group_size, msd.num_features), msd.num_features


def discrimination_layer(cfg: "RemediesConfig | None", num_features: int) -> tuple[nn.Module, int]:
    """The minibatch-discrimination layer enabled in `cfg` for [N, num_features] features (else
    nn.Identity) and the width it outputs."""
    if cfg is None or not cfg.minibatch_discrimination.enabled:
        return nn.Identity(), num_features
    mbd = cfg.minibatch_discrimination
    return MinibatchDiscrimination(num_features, mbd.num_kernels, mbd.kernel_dim), num_features + mbd.num_kernels


def check_stddev_split(cfg: "RemediesConfig | None", channels: int, where: str) -> None:
    """UserError unless minibatch stddev's num_features divides the `channels` it is given."""
    if cfg is not None and cfg.minibatch_stddev.enabled and channels % cfg.minibatch_stddev.num_features:
        raise UserError(f"model.remedies.minibatch_stddev.num_features={cfg.minibatch_stddev.num_features} must "
                        f"divide the {channels} channels of {where}; choose a divisor of {channels}")


def build_batch_layers(cfg: "RemediesConfig | None", num_features: int) -> tuple[nn.Module, int]:
    """The batch-level D layers enabled in `cfg` for [N, num_features] features, in the order
    minibatch stddev -> minibatch discrimination, and the width they output (the MLP D, where both
    act on the last hidden layer). nn.Identity when none."""
    msd, extra = stddev_layer(cfg)
    mbd, width = discrimination_layer(cfg, num_features + extra)
    layers = [m for m in (msd, mbd) if m is not None and not isinstance(m, nn.Identity)]
    if not layers:
        return nn.Identity(), width
    return (layers[0] if len(layers) == 1 else nn.Sequential(*layers)), width


def pack_labels(y: Optional[Tensor], m: int) -> Optional[Tensor]:
    """The labels of packed inputs: [N] -> [N/m, m], row i = the labels of pack i (see
    ProjectionHead for how a conditional D uses them)."""
    if y is None or m == 1:
        return y
    return y.reshape(-1, m)


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """Salimans et al. 2016: ||E_x f(x) - E_z f(G(z))||_2^2, batch means of [N, ...] features."""
    diff = real_features.flatten(1).mean(dim=0) - fake_features.flatten(1).mean(dim=0)
    return diff.square().sum()
