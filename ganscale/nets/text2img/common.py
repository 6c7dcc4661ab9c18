"""Pieces shared by the text-to-image families: the text condition, conditioning augmentation,
StackGAN-style up/residual blocks and the matching-aware discriminator.

Interface of every text-to-image pair (ganscale.nets.text2img):

    images, extras = G(z, c, generator=None)   # c: TextCondition (or a [N, E] sentence tensor)
    logits = D(x, c)                           # [N]: does image x match text c (matching-aware)
    logits = D(x, None)                        # [N]: unconditional realness (StackGAN++ only)

`extras` holds "mu" and "logvar" of the conditioning augmentation (StackGAN, StackGAN++; for the
KL in ganscale.losses_text.ca_kl) and, for StackGAN++, "scales": the images at every scale, coarse
to fine (images is the last). `generator` seeds the augmentation noise eps so the engine can
replay it (distributed equivalence): a torch.Generator, or a callable shape -> noise (the
games pass the engine's global-batch draws); None draws from torch's global generator.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganscale.conditions import TextCondition
from ganscale.errors import UserError
from ganscale.nets.text2img.config import CA_ACTIVATIONS

Text = Union[TextCondition, Tensor]


def sentence_of(c: Optional[Text], dim: int) -> Tensor:
    """The sentence vectors [N, dim] of a text condition (a precomputed [N, dim] tensor works too)."""
    if c is None:
        raise UserError("this text-to-image model needs a text condition (TextCondition or caption "
                        "embeddings); the batch carries none: pack the data with captions")
    s = c.sentence if isinstance(c, TextCondition) else c
    if s.ndim != 2 or s.shape[1] != dim:
        raise UserError(f"the text condition has sentence vectors of shape {tuple(s.shape)}, the model expects "
                        f"[N, {dim}]; set the model's text_dim to the text encoder's dimension")
    return s


def normal_like(shape, like: Tensor, generator) -> Tensor:
    """Standard normal noise of `shape` on like's device, drawn from `generator` (any device), or
    from a callable `generator(shape) -> Tensor` (the engine's seeded global-batch draws, so that
    N ranks draw the rows one process draws)."""
    if generator is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    if callable(generator) and not isinstance(generator, torch.Generator):
        return generator(tuple(shape)).to(like.device, like.dtype)
    return torch.randn(shape, generator=generator, device=generator.device).to(like.device, like.dtype)


class CondAugment(nn.Module):
    """StackGAN's conditioning augmentation: (mu, log-variance) from the sentence s by a linear layer
    and `act` (ganscale.nets.text2img.config.CA_ACTIVATIONS), c_hat = mu + exp(logvar / 2) * eps,
    eps ~ N(0, I)."""

    def __init__(self, text_dim: int, ca_dim: int, act: str = "relu"):
        super().__init__()
        if act not in CA_ACTIVATIONS:
            raise UserError(f"conditioning augmentation activation {act!r}: choose one of {', '.join(CA_ACTIVATIONS)}")
        self.text_dim, self.ca_dim, self.act = text_dim, ca_dim, act
        self.fc = nn.Linear(text_dim, (4 if act == "glu" else 2) * ca_dim)

    def forward(self, c: Text, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor, Tensor]:
        h = self.fc(sentence_of(c, self.text_dim))
        if self.act == "relu":
            h = torch.relu(h)
        elif self.act == "leaky":
            h = F.leaky_relu(h, 0.2)
        else:
            h = F.glu(h, dim=1)  # first half * sigmoid(second half), as the references' GLU
        mu, second = h[:, : self.ca_dim], h[:, self.ca_dim:]
        logvar = 2 * second if self.act == "leaky" else second  # the TF code's second half is log sigma
        eps = normal_like(mu.shape, mu, generator)
        return mu + torch.exp(0.5 * logvar) * eps, mu, logvar


def up_block(cin: int, cout: int) -> nn.Sequential:
    """x2 nearest upsampling, 3x3 conv, BatchNorm, ReLU (StackGAN's upBlock)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(True))


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True),
                                  nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.body(x))


class InitStage(nn.Module):
    """[c_hat, z] -> linear -> ng x 4x4 (BN, ReLU) -> four upsampling blocks -> ng/16 x 64x64."""

    def __init__(self, in_dim: int, ng: int):
        super().__init__()
        self.ng = ng
        self.fc = nn.Sequential(nn.Linear(in_dim, ng * 16, bias=False), nn.BatchNorm1d(ng * 16), nn.ReLU(True))
        chs = [ng, ng // 2, ng // 4, ng // 8, max(1, ng // 16)]
        self.ups = nn.Sequential(*(up_block(a, b) for a, b in zip(chs, chs[1:])))
        self.out_ch = chs[-1]

    def start(self, c_hat: Tensor, z: Tensor) -> Tensor:
        """The ng x 4x4 map the up blocks start from."""
        return self.fc(torch.cat([c_hat, z], 1)).view(-1, self.ng, 4, 4)

    def forward(self, c_hat: Tensor, z: Tensor) -> Tensor:
        return self.ups(self.start(c_hat, z))


def to_rgb(ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ch, 3, 3, 1, 1), nn.Tanh())


def tile(s: Tensor, size: int) -> Tensor:
    """[N, E] -> [N, E, size, size]."""
    return s[:, :, None, None].expand(-1, -1, size, size)


def check_res(family: str, shape, allowed: tuple[int, ...]) -> int:
    if len(shape) != 3 or shape[0] != 3 or shape[1] != shape[2] or shape[1] not in allowed:
        raise UserError(f"model.arch={family} makes RGB square images of {', '.join(map(str, allowed))} px "
                        f"here; the data gives samples of shape {tuple(shape)} (set data.shards.transform.resize)")
    return shape[1]


def projection_logit(linear: nn.Linear, embed: nn.Linear, phi: Tensor, s: Tensor) -> Tensor:
    """w^T phi + (V s)^T phi: the projection discriminator's output (Miyato & Koyama 2018) with the
    sentence s in place of the class embedding; `linear` holds w, `embed` V."""
    return linear(phi).squeeze(1) + (embed(s) * phi).sum(1)


class TextDiscriminator(nn.Module):
    """StackGAN's D: strided convs down to 4x4 (channels doubling from `df`, at most 8 df); the
    matching-aware head concatenates the compressed sentence tiled 4x4, then 3x3 conv and a 4x4
    conv to one logit. With `uncond`, a second 4x4 conv gives the unconditional logit (StackGAN++).

    `head="projection"`: the projection discriminator's head (Miyato & Koyama 2018) with the
    sentence in place of the class embedding, w^T phi(x) + (V s)^T phi(x), where phi(x) is the whole
    4x4 feature map flattened, not sum-pooled: captions name places, and a pooled phi could not
    tell a digit in one quadrant from the same digit in another."""

    def __init__(self, res: int, df: int, text_dim: int, cond_dim: int, uncond: bool = False,
                 head: str = "concat"):
        super().__init__()
        self.text_dim = text_dim
        layers: list[nn.Module] = [nn.Conv2d(3, df, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        ch, r = df, res // 2
        while r > 4:
            nxt = min(2 * ch, 8 * df)
            layers += [nn.Conv2d(ch, nxt, 4, 2, 1, bias=False), nn.BatchNorm2d(nxt), nn.LeakyReLU(0.2, True)]
            ch, r = nxt, r // 2
        self.trunk = nn.Sequential(*layers)
        self.head = head
        if head == "projection":
            self.linear = nn.Linear(ch * 16, 1)
            self.project = nn.Linear(text_dim, ch * 16, bias=False)
        else:
            self.compress = nn.Sequential(nn.Linear(text_dim, cond_dim), nn.LeakyReLU(0.2, True))
            self.joint = nn.Sequential(nn.Conv2d(ch + cond_dim, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch),
                                       nn.LeakyReLU(0.2, True), nn.Conv2d(ch, 1, 4, 1, 0))
        self.uncond = nn.Conv2d(ch, 1, 4, 1, 0) if uncond else None

    def forward(self, x: Tensor, c: Optional[Text] = None) -> Tensor:
        h = self.trunk(x)
        if c is None:
            if self.uncond is None:
                raise ValueError("this D has no unconditional head; pass the text condition")
            return self.uncond(h).flatten()
        s = sentence_of(c, self.text_dim)
        if self.head == "projection":
            phi = h.flatten(1)  # the trunk ends in LeakyReLU
            return projection_logit(self.linear, self.project, phi, s)
        return self.joint(torch.cat([h, tile(self.compress(s), h.shape[-1])], 1)).flatten()
