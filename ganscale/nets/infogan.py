"""The MNIST networks of InfoGAN (Chen et al. 2016, openai/InfoGAN infogan/models/regularized_gan.py,
network_type="mnist"), used by game.name=infogan.

Latent (G.sample_z): 62 noise dims U(-1, 1), a one-hot 10-way categorical code (uniform), 2
continuous codes U(-1, 1), concatenated in that order; `split_latent` takes the codes back out.
G: latent -> fc 1024 -> fc 7x7x128 (BatchNorm, ReLU) -> deconv 64 (BatchNorm, ReLU) -> deconv 1,
   (1024 = game.infogan.width, 64 = game.infogan.ch: the paper's; smaller only for tests)
   sigmoid: pixels in [0, 1], returned in the data's [-1, 1].
D: conv 64 (leaky ReLU) -> conv 128 -> fc 1024 (BatchNorm, leaky ReLU): the shared trunk; the
   real/fake logit is one linear layer on it. Leaky ReLU slope 0.01 (the reference's leaky_rectify).
Q: fc 128 (BatchNorm, leaky ReLU) on D's trunk -> 10 categorical logits and the 2 continuous
   codes' means (the reference's factored Gaussian with its standard deviation fixed at 1).
init="reference" starts all three as the reference's custom_ops: weights N(0, 0.02) (conv:
truncated at 2 std), biases 0, BatchNorm scales N(1, 0.02); the default keeps torch's layer
defaults, which train here where the reference's did not (docs/infogan.md).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganscale.nets.base import Generator
from ganscale.nets.layers import init_weights

SLOPE = 0.01
"""Leaky ReLU slope of D and Q: the reference's leaky_rectify default (not DCGAN's 0.2)."""


def reference_init(net: nn.Module, init: str = "reference") -> nn.Module:
    """openai/InfoGAN's custom_ops initialisation: N(0, 0.02) weights, zero biases, truncated
    (at 2 std, tf.truncated_normal_initializer) for convolutions, BatchNorm scales N(1, 0.02).
    init="pytorch" (the nets' default) keeps torch's layer defaults instead."""
    if init == "pytorch":
        return net
    init_weights(net, "normal")
    for m in net.modules():
        if type(m) is nn.Conv2d:
            nn.init.trunc_normal_(m.weight, 0.0, 0.02, -0.04, 0.04)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return net


def _norm(batchnorm: bool, n: int, two_d: bool = False) -> nn.Module:
    if not batchnorm:
        return nn.Identity()
    return nn.BatchNorm2d(n) if two_d else nn.BatchNorm1d(n)


class InfoGenerator(Generator):
    def __init__(self, noise_dim: int = 62, num_categories: int = 10, num_continuous: int = 2, batchnorm: bool = True,
                 width: int = 1024, ch: int = 64, init: str = "pytorch"):
        super().__init__()
        self.noise_dim, self.num_categories, self.num_continuous = noise_dim, num_categories, num_continuous
        self.z_dim, self.ch = noise_dim + num_categories + num_continuous, ch
        self.fc = nn.Sequential(nn.Linear(self.z_dim, width), _norm(batchnorm, width), nn.ReLU(),
                                nn.Linear(width, 7 * 7 * 2 * ch), _norm(batchnorm, 7 * 7 * 2 * ch), nn.ReLU())
        self.deconv = nn.Sequential(nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1), _norm(batchnorm, ch, True), nn.ReLU(),
                                    nn.ConvTranspose2d(ch, 1, 4, 2, 1))
        reference_init(self, init)

    def sample_z(self, n: int, generator: Optional[torch.Generator] = None, device=None,
                 truncation: Optional[float] = None) -> Tensor:
        """[noise U(-1, 1) | one-hot category, uniform | continuous codes U(-1, 1)]."""
        if truncation is not None:
            raise ValueError("InfoGAN's uniform latent has no truncation")
        noise = torch.rand(n, self.noise_dim, generator=generator, device=device) * 2 - 1
        cat = torch.randint(self.num_categories, (n,), generator=generator, device=device)
        cont = torch.rand(n, self.num_continuous, generator=generator, device=device) * 2 - 1
        return self.join_latent(noise, cat, cont)

    def join_latent(self, noise: Tensor, cat: Tensor, cont: Tensor) -> Tensor:
        return torch.cat([noise, F.one_hot(cat, self.num_categories).to(noise.dtype), cont], dim=1)

    def split_latent(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(noise, category index [N], continuous codes [N, num_continuous])."""
        noise, onehot, cont = z.split([self.noise_dim, self.num_categories, self.num_continuous], dim=1)
        return noise, onehot.argmax(1), cont

    def forward(self, z: Tensor, y=None) -> Tensor:
        h = self.fc(z).view(len(z), 2 * self.ch, 7, 7)
        return torch.sigmoid(self.deconv(h)) * 2 - 1


class InfoDiscriminator(nn.Module):
    """D(x) -> (real/fake logit [N], trunk features [N, 1024]) for the Q head."""

    def __init__(self, batchnorm: bool = True, width: int = 1024, ch: int = 64, slope: float = SLOPE,
                 init: str = "pytorch"):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, ch, 4, 2, 1), nn.LeakyReLU(slope),
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), _norm(batchnorm, 2 * ch, True), nn.LeakyReLU(slope), nn.Flatten(),
            nn.Linear(2 * ch * 7 * 7, width), _norm(batchnorm, width), nn.LeakyReLU(slope))
        self.head = nn.Linear(width, 1)
        reference_init(self, init)

    def forward(self, x: Tensor, y=None) -> tuple[Tensor, Tensor]:
        h = self.trunk((x + 1) / 2)  # the reference's pixels in [0, 1]
        return self.head(h).squeeze(1), h


class InfoQ(nn.Module):
    """Q(c | x) on D's trunk features -> (categorical logits [N, K], continuous means [N, C])."""

    def __init__(self, num_categories: int = 10, num_continuous: int = 2, batchnorm: bool = True, width: int = 1024,
                 slope: float = SLOPE, init: str = "pytorch"):
        super().__init__()
        self.num_categories = num_categories
        self.body = nn.Sequential(nn.Linear(width, 128), _norm(batchnorm, 128), nn.LeakyReLU(slope),
                                  nn.Linear(128, num_categories + num_continuous))
        reference_init(self, init)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        out = self.body(features)
        return out[:, :self.num_categories], out[:, self.num_categories:]
