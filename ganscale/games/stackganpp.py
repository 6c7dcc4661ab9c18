"""StackGAN++ (Zhang et al. 2018): a tree G at 64/128/256 px, one D per scale, joint conditional and
unconditional losses, colour consistency.

    ganscale train configs/text2img/cub_stackganpp.yaml game.text.encoder=encoders/cub.safetensors

Players: G, and D owning every scale's discriminator (model.arch=stackganpp's D holds one per
scale). One Adam over all of them is the authors' one Adam per D: Adam is per parameter and every
D has the same settings, so the updates are identical; one player keeps one gradient sync and
one skip counter for the D side.

Phases, in order:

    D_main  x gan.n_disc   for each scale i (real images resized to it): conditional real +
            1/2 wrong + 1/2 fake, plus uncond_weight * (unconditional real + fake)
    G_main  for each scale: G's loss on the conditional and (x uncond_weight) unconditional logits;
            + KL weight * the CA KL; + colour_weight * colour consistency of neighbouring scales
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganscale.games.stackgan import kl_term
from ganscale.games.text2img import TextGame, d_terms
from ganscale.losses_text import colour_consistency


def at_size(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                                       antialias=True)


class StackGANppGame(TextGame):
    name = "stackganpp"

    def d_main(self, m, sub: int):
        real, c = m.reals[sub]
        with torch.no_grad():
            scales = self.fake(m, c, "D_main", sub)[1]["scales"]
        total, u = 0.0, self.t.uncond_weight
        for i, fake in enumerate(scales):
            r = at_size(real, fake.shape[-1])
            loss = d_terms(self, m, r, c, fake, sub)
            if u > 0:
                unc = self.loss_fn.d_real(m.D(r, None)) + self.loss_fn.d_fake(m.D(fake, None))
                m.stats[f"loss/D/uncond{i}"] = unc.detach()
                loss = loss + u * unc
            total = total + loss
        m.stats["loss/D"] = total.detach()
        return total

    def g_main(self, m, sub: int):
        c = m.reals[0][1]
        _, extras = self.fake(m, c, "G_main", sub)
        scales, loss = extras["scales"], kl_term(self, m, extras)
        for i, fake in enumerate(scales):
            adv = self.loss_fn.g(m.D(fake, c))
            if self.t.uncond_weight > 0:
                adv = adv + self.t.uncond_weight * self.loss_fn.g(m.D(fake, None))
            m.stats[f"loss/G/scale{i}"] = adv.detach()
            loss = loss + adv
        if self.t.colour_weight > 0 and len(scales) > 1:
            cc = sum(colour_consistency(f, co) for f, co in zip(scales[1:], scales[:-1]))
            m.stats["loss/G/colour"] = cc.detach()
            loss = loss + self.t.colour_weight * cc
        loss = loss + self.damsm_term(m, scales[-1], c)  # AttnGAN: on the finest image
        m.stats["loss/G"] = loss.detach()
        return loss
