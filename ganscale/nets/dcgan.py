"""DCGAN family (Radford et al. 2016) at 28, 32 and 64 px.

G: z -> linear -> [b x b] (b = 7 at 28 px, 4 otherwise) -> (ConvTranspose 4x4/2, BN, ReLU) per
doubling -> ConvTranspose 4x4/2 -> tanh (or no activation with `G_output: logits`, the per-pixel
Bernoulli logits of game.name=discrete); channels halve as the resolution doubles. A
class-conditional G uses BatchNorm with per-class gain and bias (conditional BN on one_hot(y))
and, with `label_input`, reads [z, one_hot(y)].
D: Conv 4x4/2 + LeakyReLU(0.2) per halving down to b x b, optional BatchNorm, then a linear
output on the flattened features plus, when conditional, the projection of a class embedding;
with `label_input` the first conv also reads one_hot(y) as constant maps.

    ganscale train configs/mnist/dcgan.yaml
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganscale.errors import UserError
from ganscale.nets.base import Discriminator, Generator
from ganscale.nets.layers import ConditionalBatchNorm2d, ProjectionHead, class_count, init_weights, one_hot
from ganscale.nets.remedies import (RemediesConfig, check_stddev_split, discrimination_layer, pack_labels,
                                    pack_samples, stddev_layer)

BOTTOM = {28: 7, 32: 4, 64: 4}


def _resolutions(family: str, shape: tuple[int, ...]) -> list[int]:
    """[b, 2b, ..., res] for square images of `shape`, or a UserError naming the supported sizes."""
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in BOTTOM:
        raise UserError(f"model.arch={family} supports square images of {', '.join(map(str, sorted(BOTTOM)))} px; "
                        f"the data gives samples of shape {tuple(shape)}")
    res, b = shape[1], BOTTOM[shape[1]]
    return [b * 2**i for i in range(int(math.log2(res // b)) + 1)]


class DCGANGenerator(Generator):
    def __init__(self, z_dim: int, out_shape: tuple[int, ...], num_classes: int, ch: int, label_input: bool = False,
                 output: str = "tanh"):
        super().__init__()
        self.output = output
        self.z_dim, self.num_classes = z_dim, num_classes
        self.label_input = label_input and num_classes > 0
        res = _resolutions("dcgan", out_shape)
        full = res[-1]
        chs = [ch * full // r // 2 for r in res[:-1]]  # channels at b, 2b, ..., res/2
        self.bottom, self.c0 = res[0], chs[0]
        self.linear = nn.Linear(z_dim + (num_classes if self.label_input else 0), chs[0] * res[0] ** 2)
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(c, num_classes) for c in chs)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(chs[i], chs[i + 1], 4, 2, 1) for i in range(len(chs) - 1))
        self.out = nn.ConvTranspose2d(chs[-1], out_shape[0], 4, 2, 1)

    def forward(self, z: Tensor, y: Optional[Tensor] = None) -> Tensor:
        c = one_hot(y, self.num_classes, z.dtype)
        h = self.linear(torch.cat([z, c], 1) if self.label_input else z)
        h = h.view(z.shape[0], self.c0, self.bottom, self.bottom)
        h = F.relu(self.norms[0](h, c))
        for up, norm in zip(self.ups, self.norms[1:]):
            h = F.relu(norm(up(h), c))
        h = self.out(h)
        return torch.tanh(h) if self.output == "tanh" else h


class DCGANDiscriminator(Discriminator):
    """Mode-collapse remedies (`remedies`, see nets/remedies.py): packing concatenates m samples
    (with their label maps) along channels at the input, so N inputs give N/m logits; minibatch
    stddev appends its maps before the last conv (where StyleGAN puts it, ahead of D's last block);
    minibatch discrimination acts on the flattened final features before the output layer. The
    features returned for feature matching are those final features, before minibatch discrimination."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, ch: int, norm: str, label_input: bool = False,
                 remedies: Optional[RemediesConfig] = None):
        super().__init__()
        self.num_classes = num_classes
        self.label_input = label_input and num_classes > 0
        self.pack = remedies.pack if remedies is not None else 1
        res = _resolutions("dcgan", in_shape)[::-1]  # res, res/2, ..., b
        full = res[0]
        chs = [(in_shape[0] + (num_classes if self.label_input else 0)) * self.pack]
        chs += [ch * full // r // 2 for r in res[1:]]
        self.mbstd, extra = stddev_layer(remedies)
        check_stddev_split(remedies, chs[-2], "the DCGAN D's input to its last conv")
        layers: list[nn.Module] = []
        for i in range(len(chs) - 1):
            if i == len(chs) - 2:
                self.last_block = len(layers)  # where minibatch stddev goes (convs[:last_block] before it)
            layers.append(nn.Conv2d(chs[i] + (extra if i == len(chs) - 2 else 0), chs[i + 1], 4, 2, 1))
            if norm == "batch" and i > 0:
                layers.append(nn.BatchNorm2d(chs[i + 1]))
            layers.append(nn.LeakyReLU(0.2))
        self.convs = nn.Sequential(*layers)
        self.mbd, width = discrimination_layer(remedies, chs[-1] * res[-1] ** 2)
        self.head = ProjectionHead(width, num_classes)

    def forward(self, x: Tensor, y: Optional[Tensor] = None, return_features: bool = False):
        if self.label_input:
            if y is None:
                raise ValueError("this D is class-conditional: pass labels y")
            maps = one_hot(y, self.num_classes, x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, maps], 1)
        h = pack_samples(x, self.pack)
        if self.mbstd is not None:
            h = self.convs[self.last_block:](self.mbstd(self.convs[:self.last_block](h)))
        else:
            h = self.convs(h)
        h = h.flatten(1)
        out = self.head(self.mbd(h), pack_labels(y, self.pack) if self.num_classes else None)
        return (out, h) if return_features else out


def build_dcgan(cfg, info) -> tuple[Generator, Discriminator]:
    num_classes = class_count(cfg, info)
    G = DCGANGenerator(cfg.z_dim, info.shape, num_classes, cfg.dcgan.G_ch, cfg.dcgan.label_input, cfg.dcgan.G_output)
    D = DCGANDiscriminator(info.shape, num_classes, cfg.dcgan.D_ch, cfg.dcgan.D_norm, cfg.dcgan.label_input,
                           cfg.remedies)
    init_weights(G, "normal")
    init_weights(D, "normal")
    return G, D
