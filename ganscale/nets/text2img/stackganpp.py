"""StackGAN++ (Zhang et al. 2018): a tree G emitting 64, 128 and 256 px images, one D per scale.

G: c_hat from conditioning augmentation; [c_hat, z] -> 16 gf x 4x4 -> upsampling to 64x64 (gf
channels) -> image 1; each further branch joins c_hat tiled to the feature map, runs residual
blocks and upsamples once (halving the channels) -> the next image. `extras["scales"]` holds every
scale, coarse to fine; the colour-consistency term compares neighbouring scales
(ganscale.losses_text.colour_consistency).
D: one StackGAN D per scale, chosen by the input's size, each with a conditional head
D(x, c) and an unconditional head D(x, None) for the joint loss.

    model.arch=stackganpp model.stackganpp.branches=3      # 64, 128, 256 px
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ganscale.nets.base import Discriminator, Generator
from ganscale.nets.text2img.common import (CondAugment, InitStage, ResBlock, Text, TextDiscriminator, check_res, tile,
                                           to_rgb, up_block)
from ganscale.nets.text2img.config import StackGANppConfig


class Branch(nn.Module):
    """Next-stage branch: join the text, residual blocks, upsample x2."""

    def __init__(self, ch: int, ca_dim: int, res_blocks: int):
        super().__init__()
        self.joint = nn.Sequential(nn.Conv2d(ch + ca_dim, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch),
                                   nn.ReLU(True), *(ResBlock(ch) for _ in range(res_blocks)))
        self.up = up_block(ch, max(1, ch // 2))

    def forward(self, h: Tensor, c_hat: Tensor) -> Tensor:
        return self.up(self.joint(torch.cat([h, tile(c_hat, h.shape[-1])], 1)))


class StackGANppGenerator(Generator):
    def __init__(self, z_dim: int, cfg: StackGANppConfig):
        super().__init__()
        self.z_dim = z_dim
        self.ca = CondAugment(cfg.text_dim, cfg.ca_dim, cfg.ca_act)
        self.init = InitStage(z_dim + cfg.ca_dim, cfg.gf * 16)
        branch_ch = [self.init.out_ch]
        for _ in range(cfg.branches - 1):
            branch_ch.append(max(1, branch_ch[-1] // 2))
        self.branches = nn.ModuleList(Branch(branch_ch[i], cfg.ca_dim, cfg.res_blocks)
                                      for i in range(cfg.branches - 1))
        self.to_rgb = nn.ModuleList(to_rgb(ch) for ch in branch_ch)

    def forward(self, z: Tensor, c: Text, generator: Optional[torch.Generator] = None) -> tuple[Tensor, dict]:
        c_hat, mu, logvar = self.ca(c, generator)
        h = self.init(c_hat, z)
        scales = [self.to_rgb[0](h)]
        for branch, rgb in zip(self.branches, self.to_rgb[1:]):
            h = branch(h, c_hat)
            scales.append(rgb(h))
        return scales[-1], {"mu": mu, "logvar": logvar, "scales": scales}


class StackGANppDiscriminator(Discriminator):
    def __init__(self, cfg: StackGANppConfig):
        super().__init__()
        self.sizes = [64 * 2**i for i in range(cfg.branches)]
        self.nets = nn.ModuleList(TextDiscriminator(r, cfg.df, cfg.text_dim, cfg.ca_dim, uncond=True)
                                  for r in self.sizes)

    def forward(self, x: Tensor, c: Optional[Text] = None) -> Tensor:
        """Conditional logits D(x, c), or unconditional ones with c=None, by the D of x's size."""
        if x.shape[-1] not in self.sizes:
            raise ValueError(f"StackGAN++ D has scales {self.sizes}; got images of size {x.shape[-1]}")
        return self.nets[self.sizes.index(x.shape[-1])](x, c)


def build_stackganpp(model_cfg, info) -> tuple[Generator, Discriminator]:
    cfg: StackGANppConfig = model_cfg.stackganpp
    check_res("stackganpp", info.shape, (64 * 2 ** (cfg.branches - 1),))
    return StackGANppGenerator(model_cfg.z_dim, cfg), StackGANppDiscriminator(cfg)
