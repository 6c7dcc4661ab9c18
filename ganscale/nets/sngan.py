"""SNGAN ResNet family (Miyato et al. 2018; class conditioning as in cGANs with projection
discriminator, Miyato & Koyama 2018): ResNet G with class-conditional BatchNorm on one_hot(y),
ResNet D with a projection head. Spectral norm comes from `reg.spectral_norm: [D]` (the paper's
setting) so the same nets can be trained with or without it.

    ganscale train configs/mnist/sngan.yaml
"""

from __future__ import annotations

from ganscale.nets.base import Discriminator, Generator
from ganscale.nets.layers import class_count, init_weights
from ganscale.nets.resnet import ResNetDiscriminator, ResNetGenerator, resnet_layout


def build_sngan(cfg, info) -> tuple[Generator, Discriminator]:
    c = cfg.sngan
    layout = resnet_layout("sngan", c, info.shape)
    num_classes = class_count(cfg, info)
    G = ResNetGenerator(cfg.z_dim, info.shape, num_classes, layout, c.attn_res, eps=c.bn_eps)
    D = ResNetDiscriminator(info.shape, num_classes, layout, c.attn_res, cfg.remedies)
    init_weights(G, "xavier")
    init_weights(D, "xavier")
    return G, D
