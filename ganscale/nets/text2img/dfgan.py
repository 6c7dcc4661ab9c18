"""DF-GAN (Tao et al. 2022): one-stage text-to-image with deep text-image fusion.

G: z -> linear -> 8 nf x 4x4; each block doubles the size and runs two fusion blocks (each two
affine modulations gamma(e) * h + beta(e) with e = [z, sentence], LeakyReLU between) around two
3x3 convs, with a (1x1 when the width changes) shortcut; LeakyReLU, 3x3 conv and tanh to RGB.
Widths 8 nf until the last three doublings halve them (the authors' channel table).
D: 3x3 conv, then residual blocks (4x4 stride-2 conv + 3x3 conv, a learnable residual gain
initialised at 0, average-pooled shortcut) down to 4x4 at 8 nf; the matching-aware head
concatenates the sentence tiled 4x4 -> 3x3 conv (2 nf) -> LeakyReLU -> 4x4 conv -> one logit
(`d_head=projection`: a projection head on the sentence instead).
Train with the hinge loss and MA-GP (ganscale.losses_text.ma_gp on D(x, c) with x and
c.sentence requiring grad). Nothing assumes a device: it runs on CPU and GPU alike.

    model.arch=dfgan model.dfgan.nf=32
    model.arch=dfgan model.dfgan.nf=16 model.dfgan.d_nf=8     # G twice as wide as D
    model.arch=dfgan model.dfgan.d_head=projection            # D reads the sentence by projection
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganscale.nets.base import Discriminator, Generator
from ganscale.nets.text2img.common import Text, check_res, projection_logit, sentence_of, tile
from ganscale.nets.text2img.config import DFGANConfig

SIZES = (32, 64, 128, 256)


def _channels(nf: int, res: int, g: bool) -> list[int]:
    """The authors' table: D widens nf, 2 nf, 4 nf, then 8 nf down to 4x4; G is D's table reversed,
    so that its last three doublings halve the width at every size (64 px: 8, 8, 4, 2, 1 x nf)."""
    n = int(math.log2(res)) - 1
    chs = [nf * min(2**i, 8) for i in range(n)]
    return chs[::-1] if g else chs


class Affine(nn.Module):
    """gamma(e) * h + beta(e); gamma starts at 1 and beta at 0 (the last layers' init)."""

    def __init__(self, cond_dim: int, ch: int, hidden: int):
        super().__init__()
        hidden = hidden or ch
        self.gamma = nn.Sequential(nn.Linear(cond_dim, hidden), nn.ReLU(True), nn.Linear(hidden, ch))
        self.beta = nn.Sequential(nn.Linear(cond_dim, hidden), nn.ReLU(True), nn.Linear(hidden, ch))
        nn.init.zeros_(self.gamma[2].weight)
        nn.init.ones_(self.gamma[2].bias)
        nn.init.zeros_(self.beta[2].weight)
        nn.init.zeros_(self.beta[2].bias)

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        return self.gamma(e)[:, :, None, None] * h + self.beta(e)[:, :, None, None]


class Fusion(nn.Module):
    """DFBlock: affine, LeakyReLU, affine, LeakyReLU."""

    def __init__(self, cond_dim: int, ch: int, hidden: int):
        super().__init__()
        self.a0, self.a1 = Affine(cond_dim, ch, hidden), Affine(cond_dim, ch, hidden)

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        return F.leaky_relu(self.a1(F.leaky_relu(self.a0(h, e), 0.2), e), 0.2)


class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int, hidden: int):
        super().__init__()
        self.fuse0, self.conv0 = Fusion(cond_dim, cin, hidden), nn.Conv2d(cin, cout, 3, 1, 1)
        self.fuse1, self.conv1 = Fusion(cond_dim, cout, hidden), nn.Conv2d(cout, cout, 3, 1, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        h = F.interpolate(h, scale_factor=2.0)
        return self.shortcut(h) + self.conv1(self.fuse1(self.conv0(self.fuse0(h, e)), e))


class DFGANGenerator(Generator):
    def __init__(self, z_dim: int, res: int, cfg: DFGANConfig):
        super().__init__()
        self.z_dim, self.text_dim = z_dim, cfg.text_dim
        chs = _channels(cfg.nf, res, g=True)
        self.c0 = chs[0]
        self.fc = nn.Linear(z_dim, chs[0] * 16)
        cond = z_dim + cfg.text_dim
        self.blocks = nn.ModuleList(GBlock(a, b, cond, cfg.affine_hidden) for a, b in zip(chs, chs[1:]))
        self.out = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(chs[-1], 3, 3, 1, 1),
                                 nn.Tanh() if cfg.output == "tanh" else nn.Identity())

    def forward(self, z: Tensor, c: Text, generator: Optional[torch.Generator] = None) -> tuple[Tensor, dict]:
        e = torch.cat([z, sentence_of(c, self.text_dim)], 1)
        h = self.fc(z).view(-1, self.c0, 4, 4)
        for block in self.blocks:
            h = block(h, e)
        return self.out(h), {}


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.res = nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                                 nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.LeakyReLU(0.2))
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.gain = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(self.shortcut(x), 2) + self.gain * self.res(x)


class DFGANDiscriminator(Discriminator):
    def __init__(self, res: int, cfg: DFGANConfig):
        super().__init__()
        self.text_dim = cfg.text_dim
        nf = cfg.d_nf or cfg.nf
        chs = _channels(nf, res, g=False)
        self.stem = nn.Conv2d(3, chs[0], 3, 1, 1)
        self.blocks = nn.Sequential(*(DBlock(a, b) for a, b in zip(chs, chs[1:])))
        self.head = (TextProjection(chs[-1], cfg.text_dim) if cfg.d_head == "projection"
                     else TextConcat(chs[-1], cfg.text_dim, 2 * nf))

    def forward(self, x: Tensor, c: Text) -> Tensor:
        return self.head(self.blocks(self.stem(x)), sentence_of(c, self.text_dim))


class TextConcat(nn.Sequential):
    """The authors' matching-aware head: the sentence tiled 4x4 beside the image features, a 3x3 conv
    of `hidden` channels, LeakyReLU, a 4x4 conv to one logit (a Sequential: its weights keep the
    keys head.0 / head.2 of checkpoints written before the head became a choice)."""

    def __init__(self, ch: int, text_dim: int, hidden: int):
        super().__init__(nn.Conv2d(ch + text_dim, hidden, 3, 1, 1, bias=False), nn.LeakyReLU(0.2),
                         nn.Conv2d(hidden, 1, 4, 1, 0, bias=False))

    def forward(self, h: Tensor, s: Tensor) -> Tensor:
        return super().forward(torch.cat([h, tile(s, h.shape[-1])], 1)).flatten()


class TextProjection(nn.Module):
    """`model.dfgan.d_head=projection`: LeakyReLU, sum pool to phi(x), then w^T phi(x) + (V s)^T phi(x)
    (the projection discriminator's head, ganscale.nets.layers.ProjectionHead, with a linear map of
    the sentence in place of the class embedding)."""

    def __init__(self, ch: int, text_dim: int):
        super().__init__()
        self.linear = nn.Linear(ch, 1)
        self.embed = nn.Linear(text_dim, ch, bias=False)

    def forward(self, h: Tensor, s: Tensor) -> Tensor:
        phi = F.leaky_relu(h, 0.2).sum((2, 3))
        return projection_logit(self.linear, self.embed, phi, s)


def build_dfgan(model_cfg, info) -> tuple[Generator, Discriminator]:
    res = check_res("dfgan", info.shape, SIZES)
    return DFGANGenerator(model_cfg.z_dim, res, model_cfg.dfgan), DFGANDiscriminator(res, model_cfg.dfgan)
