"""ResNet G and D shared by SNGAN and BigGAN: one definition for every resolution, sized by a
channel table (stage channels = base width x multiplier) and conditioned through
ConditionalBatchNorm (G) and a projection head (D).

G: z -> linear -> [bottom x bottom] -> GBlock (BN-ReLU-up-conv-BN-ReLU-conv + up-conv1x1 skip)
   per doubling -> BN-ReLU-conv3x3-tanh. Each block's BatchNorm is conditioned on a vector c_i:
   one_hot(y) (SNGAN) or [shared_embedding(y), z_i] (BigGAN, z split across the blocks).
D: DBlocks (pre-activation ReLU-conv-ReLU-conv-avgpool + conv1x1 skip; the first block without
   the leading ReLU) -> ReLU -> global sum pool -> linear + projection of the class embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganscale.errors import UserError
from ganscale.nets.base import Discriminator, Generator
from ganscale.nets.layers import ConditionalBatchNorm2d, ProjectionHead, SelfAttention2d, one_hot
from ganscale.nets.remedies import (RemediesConfig, check_stddev_split, discrimination_layer, pack_labels,
                                    pack_samples, stddev_layer)

# resolution -> (bottom size, G channel multipliers per stage from the bottom up)
G_TABLES: dict[int, tuple[int, list[int]]] = {
    28: (7, [4, 4, 4]),
    32: (4, [4, 4, 4, 4]),
    64: (4, [16, 16, 8, 4, 2]),
    128: (4, [16, 16, 8, 4, 2, 1]),
    256: (4, [16, 16, 8, 8, 4, 2, 1]),
}
# resolution -> (D channel multipliers per block, whether the block halves the resolution)
D_TABLES: dict[int, tuple[list[int], list[bool]]] = {
    28: ([4, 4, 4, 4], [True, True, False, False]),
    32: ([4, 4, 4, 4], [True, True, False, False]),
    64: ([1, 2, 4, 8, 16], [True] * 4 + [False]),
    128: ([1, 2, 4, 8, 16, 16], [True] * 5 + [False]),
    256: ([1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False]),
}


@dataclass(frozen=True)
class ResNetLayout:
    """Resolved architecture for one resolution."""

    bottom: int
    G_channels: list[int]
    D_channels: list[int]
    D_down: list[bool]

    @property
    def G_resolutions(self) -> list[int]:
        return [self.bottom * 2**i for i in range(len(self.G_channels))]

    def D_resolutions(self, res: int) -> list[int]:
        out = []
        for down in self.D_down:
            res = res // 2 if down else res
            out.append(res)
        return out


def resnet_layout(family: str, cfg, shape: tuple[int, ...]) -> ResNetLayout:
    """Channel layout of `cfg` (ResNetConfig) for images of `shape`, or a UserError naming the fix."""
    if len(shape) != 3 or shape[1] != shape[2]:
        raise UserError(f"model.arch={family} needs square images C x H x W, the data gives {tuple(shape)}")
    res = shape[1]
    if res not in G_TABLES:
        raise UserError(f"model.arch={family} has no layout for {res} px images; "
                        f"supported resolutions: {', '.join(map(str, sorted(G_TABLES)))}")
    bottom, g_mult = G_TABLES[res]
    d_mult, d_down = D_TABLES[res]
    problems = []
    if cfg.G_mult:
        if len(cfg.G_mult) != len(g_mult):
            problems.append(f"model.{family}.G_mult={cfg.G_mult} must have {len(g_mult)} entries at {res} px "
                            f"(one per stage {bottom}..{res}), e.g. {g_mult}")
        g_mult = cfg.G_mult
    if cfg.D_mult:
        if len(cfg.D_mult) != len(d_mult):
            problems.append(f"model.{family}.D_mult={cfg.D_mult} must have {len(d_mult)} entries at {res} px, "
                            f"e.g. {d_mult}")
        d_mult = cfg.D_mult
    layout = ResNetLayout(bottom, [cfg.G_ch * m for m in g_mult], [cfg.D_ch * m for m in d_mult], d_down)
    if cfg.attn_res and (cfg.attn_res not in layout.G_resolutions[1:] or cfg.attn_res not in layout.D_resolutions(res)):
        problems.append(f"model.{family}.attn_res={cfg.attn_res} is not a resolution of both G and D at {res} px; "
                        f"choose one of {sorted(set(layout.G_resolutions[1:]) & set(layout.D_resolutions(res)))} or 0")
    if problems:
        raise UserError("; ".join(problems))
    return layout


class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int, eps: float):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(cin, cond_dim, eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn2 = ConditionalBatchNorm2d(cout, cond_dim, eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor, c: Optional[Tensor]) -> Tensor:
        h = F.relu(self.bn1(x, c))
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, down: bool, preact: bool):
        super().__init__()
        self.down, self.preact = down, preact
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if (cin != cout or down) else None

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(x) if self.preact else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.skip is not None:
            # pre-activation blocks: conv then pool; the first block pools first (cheaper, as in SNGAN)
            if self.preact:
                s = self.skip(s)
                s = F.avg_pool2d(s, 2) if self.down else s
            else:
                s = F.avg_pool2d(s, 2) if self.down else s
                s = self.skip(s)
        return h + s


class ResNetGenerator(Generator):
    """G(z, y). `shared_dim` = 0: BatchNorm conditioned on one_hot(y) (SNGAN); > 0: on a shared
    class embedding of that size (BigGAN). `hierarchical_z`: z is split into one chunk for the
    input layer and one per block, each block conditioned on [embedding, its chunk]."""

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], num_classes: int, layout: ResNetLayout,
                 attn_res: int = 0, shared_dim: int = 0, hierarchical_z: bool = False, eps: float = 1e-5):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.out_shape = tuple(out_shape)
        self.bottom = layout.bottom
        chs = layout.G_channels
        num_blocks = len(chs) - 1
        self.hierarchical_z = hierarchical_z
        if hierarchical_z:
            slots = num_blocks + 1
            if z_dim % slots:
                raise UserError(f"model.z_dim={z_dim} must split evenly into {slots} chunks (input layer + "
                                f"{num_blocks} blocks) for the hierarchical latent; e.g. z_dim={slots * max(1, z_dim // slots)}")
            self.chunk = z_dim // slots
        else:
            self.chunk = 0
        self.shared = nn.Embedding(num_classes, shared_dim) if (shared_dim and num_classes) else None
        class_dim = (shared_dim if shared_dim else num_classes) if num_classes else 0
        cond_dim = class_dim + self.chunk
        self.linear = nn.Linear(self.chunk or z_dim, chs[0] * layout.bottom**2)
        self.blocks = nn.ModuleList(GBlock(chs[i], chs[i + 1], cond_dim, eps) for i in range(num_blocks))
        res = layout.G_resolutions[1:]
        self.attn_after = res.index(attn_res) if attn_res else -1
        self.attn = SelfAttention2d(chs[self.attn_after + 1]) if attn_res else None
        self.out_bn = nn.BatchNorm2d(chs[-1], eps=eps)
        self.out_conv = nn.Conv2d(chs[-1], out_shape[0], 3, padding=1)

    def class_vector(self, y: Optional[Tensor]) -> Optional[Tensor]:
        if not self.num_classes:
            return None
        if y is None:
            raise ValueError("this G is class-conditional: pass labels y")
        return self.shared(y) if self.shared is not None else one_hot(y, self.num_classes)

    def forward(self, z: Tensor, y: Optional[Tensor] = None) -> Tensor:
        if self.hierarchical_z:
            z0, *zs = z.split(self.chunk, dim=1)
        else:
            z0, zs = z, [None] * len(self.blocks)
        cls = self.class_vector(y)
        h = self.linear(z0).view(z.shape[0], -1, self.bottom, self.bottom)
        for i, block in enumerate(self.blocks):
            parts = [t for t in (cls, zs[i]) if t is not None]
            h = block(h, torch.cat(parts, dim=1) if parts else None)
            if i == self.attn_after:
                h = self.attn(h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class ResNetDiscriminator(Discriminator):
    """Mode-collapse remedies (`remedies`, see nets/remedies.py): packing concatenates m samples
    along channels at the input (N inputs give N/m logits); minibatch stddev appends its maps before
    the last DBlock (StyleGAN's place, at the bottom resolution); minibatch discrimination acts on
    the pooled final features before the output layer. The features returned for feature matching
    are the pooled features, before minibatch discrimination."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, layout: ResNetLayout, attn_res: int = 0,
                 remedies: Optional[RemediesConfig] = None):
        super().__init__()
        self.num_classes = num_classes
        self.pack = remedies.pack if remedies is not None else 1
        chs = [in_shape[0] * self.pack, *layout.D_channels]
        last = len(layout.D_channels) - 1
        self.mbstd, extra = stddev_layer(remedies)
        check_stddev_split(remedies, chs[last], "the ResNet D's input to its last block")
        self.blocks = nn.ModuleList(
            DBlock(chs[i] + (extra if i == last else 0), chs[i + 1], layout.D_down[i], preact=i > 0)
            for i in range(len(layout.D_channels))
        )
        res = layout.D_resolutions(in_shape[1])
        self.attn_after = res.index(attn_res) if attn_res else -1
        self.attn = SelfAttention2d(chs[self.attn_after + 1]) if attn_res else None
        self.mbd, width = discrimination_layer(remedies, chs[-1])
        self.head = ProjectionHead(width, num_classes)

    def forward(self, x: Tensor, y: Optional[Tensor] = None, return_features: bool = False):
        h = pack_samples(x, self.pack)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            if i == last and self.mbstd is not None:
                h = self.mbstd(h)
            h = block(h)
            if i == self.attn_after:
                h = self.attn(h)
        h = F.relu(h).sum(dim=(2, 3))  # global sum pooling
        out = self.head(self.mbd(h), pack_labels(y, self.pack) if self.num_classes else None)
        return (out, h) if return_features else out
