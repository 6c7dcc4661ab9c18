"""StackGAN (Zhang et al. 2017): conditioning augmentation, Stage-I at 64 px, Stage-II at 256 px.

Stage-I G: c_hat = mu + sigma * eps from the sentence vector; [c_hat, z] -> linear -> 8 gf x 4x4
-> four upsampling blocks -> 64 px. Stage-II G: the frozen Stage-I image is encoded down to 16x16,
joined with its own c_hat tiled 16x16, passed through residual blocks and upsampled four times to
256 px. Both D (64 and 256 px) are matching-aware: a logit for each (image, text) pair. The
real/wrong/fake terms and the KL are in ganscale.losses_text. With `word_attention`, Stage-I's
features attend over the caption's words at that resolution (AttnGAN's attentional stage,
ganscale.nets.text2img.attention).

    model.arch=stackgan model.stackgan.stage=1    # then stage=2 with Stage-I's weights in G.stage1
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ganscale.nets.base import Discriminator, Generator
from ganscale.nets.text2img.attention import AttentionStage
from ganscale.nets.text2img.common import (CondAugment, InitStage, ResBlock, Text, TextDiscriminator, check_res, tile,
                                           to_rgb, up_block)
from ganscale.nets.text2img.config import StackGANConfig


class StackGANStage1Generator(Generator):
    def __init__(self, z_dim: int, cfg: StackGANConfig):
        super().__init__()
        self.z_dim = z_dim
        self.ca = CondAugment(cfg.text_dim, cfg.ca_dim, cfg.ca_act)
        self.init = InitStage(z_dim + cfg.ca_dim, cfg.gf * 8)
        self.out = to_rgb(self.init.out_ch)
        # the up blocks before the attention stage (4 -> 8 -> 16 -> 32 px); None: no word attention
        self.before_attention = None
        if cfg.word_attention:
            self.before_attention = (cfg.word_attention // 4).bit_length() - 1
            ch = self.init.ups[self.before_attention - 1][1].out_channels
            self.attention = AttentionStage(ch, cfg.text_dim)

    def forward(self, z: Tensor, c: Text, generator: Optional[torch.Generator] = None) -> tuple[Tensor, dict]:
        c_hat, mu, logvar = self.ca(c, generator)
        if self.before_attention is None:
            h = self.init(c_hat, z)
        else:
            k, ups = self.before_attention, self.init.ups
            h = ups[k:](self.attention(ups[:k](self.init.start(c_hat, z)), c))
        return self.out(h), {"mu": mu, "logvar": logvar}


class StackGANStage2Generator(Generator):
    def __init__(self, z_dim: int, cfg: StackGANConfig):
        super().__init__()
        self.z_dim, g = z_dim, cfg.stage2_gf
        self.stage1 = StackGANStage1Generator(z_dim, cfg)
        self.stage1.requires_grad_(False)  # trained first, frozen here (as in the paper)
        self.ca = CondAugment(cfg.text_dim, cfg.ca_dim, cfg.ca_act)
        self.encode = nn.Sequential(nn.Conv2d(3, g, 3, 1, 1), nn.ReLU(True),
                                    nn.Conv2d(g, 2 * g, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * g), nn.ReLU(True),
                                    nn.Conv2d(2 * g, 4 * g, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * g),
                                    nn.ReLU(True))
        self.joint = nn.Sequential(nn.Conv2d(4 * g + cfg.ca_dim, 4 * g, 3, 1, 1, bias=False), nn.BatchNorm2d(4 * g),
                                   nn.ReLU(True), *(ResBlock(4 * g) for _ in range(cfg.res_blocks)))
        chs = [4 * g, 2 * g, g, max(1, g // 2), max(1, g // 4)]
        self.ups = nn.Sequential(*(up_block(a, b) for a, b in zip(chs, chs[1:])))
        self.out = to_rgb(chs[-1])

    def train(self, mode: bool = True) -> "StackGANStage2Generator":
        super().train(mode)
        self.stage1.eval()  # frozen: its BatchNorm statistics stay those Stage-I learned
        return self

    def forward(self, z: Tensor, c: Text, generator: Optional[torch.Generator] = None) -> tuple[Tensor, dict]:
        with torch.no_grad():
            low, _ = self.stage1(z, c, generator)
        c_hat, mu, logvar = self.ca(c, generator)
        h = self.joint(torch.cat([self.encode(low), tile(c_hat, 16)], 1))
        return self.out(self.ups(h)), {"mu": mu, "logvar": logvar, "stage1": low}


class StackGANDiscriminator(Discriminator):
    def __init__(self, res: int, cfg: StackGANConfig):
        super().__init__()
        self.net = TextDiscriminator(res, cfg.df, cfg.text_dim, cfg.ca_dim, head=cfg.d_head)

    def forward(self, x: Tensor, c: Text) -> Tensor:
        return self.net(x, c)


def build_stackgan(model_cfg, info) -> tuple[Generator, Discriminator]:
    cfg: StackGANConfig = model_cfg.stackgan
    res = check_res("stackgan", info.shape, (64,) if cfg.stage == 1 else (256,))
    G = (StackGANStage1Generator if cfg.stage == 1 else StackGANStage2Generator)(model_cfg.z_dim, cfg)
    return G, StackGANDiscriminator(res, cfg)
