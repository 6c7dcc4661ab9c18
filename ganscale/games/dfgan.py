"""DF-GAN (Tao et al. 2022): one stage, hinge loss, matching-aware D with MA-GP.

    ganscale train configs/text2img/digits_dfgan.yaml
    ganscale train configs/text2img/cub_dfgan.yaml game.text.encoder=encoders/cub.safetensors

Phases, in order:

    D_main  x gan.n_disc   real + w (real, mismatched caption) + f (G(z, c), c), with w = f = 1/2
                           (game.text.wrong_weight / fake_weight), plus MA-GP k * mean ||(dD/dx,
                           dD/ds)||^p on real images with their own sentences (k=2, p=6)
    G_main  the hinge G loss on D(G(z, c), c)
"""

from __future__ import annotations

import torch

from ganscale.conditions import TextCondition
from ganscale.games.base import Phase
from ganscale.games.text2img import TextGame
from ganscale.losses_text import ma_gp, matching_aware_d


def d_terms(game, m, d, real, c, fake, sub: int, gp: bool) -> torch.Tensor:
    """The matching-aware D loss of one (real, fake) pair of batches (shared by StackGAN's D), with
    DF-GAN's MA-GP when `gp`; logs the parts."""
    t = game.t
    wrong = m.mismatched(c, "D_main", sub)
    if gp:
        real = real.detach().requires_grad_(True)
        s = c.sentence.detach().requires_grad_(True)
        c = TextCondition(s, c.words, c.mask)
    r = d(real, c)
    parts = matching_aware_d(game.loss_fn, r, d(real, wrong), d(fake, c), t.wrong_weight, t.fake_weight)
    loss = parts["total"]
    if gp:
        penalty = ma_gp(r, real, c.sentence, t.ma_gp_k, t.ma_gp_p)
        loss = loss + penalty
        m.stats["reg/D/ma_gp"] = penalty.detach()
    m.stats.update({f"loss/D/{k}": v.detach() for k, v in parts.items() if k != "total"})
    m.stats.update({"loss/D": loss.detach(), "D/real": r.detach().mean()})
    return loss


class DFGANGame(TextGame):
    name = "dfgan"

    def phases(self, cfg):
        return [Phase("D_main", "D", self.d_main, repeat=cfg.gan.n_disc), Phase("G_main", "G", self.g_main)]

    def d_main(self, m, sub: int):
        real, c = m.reals[sub]
        with torch.no_grad():
            fake = self.fake(m, c, "D_main", sub)[0]
        return d_terms(self, m, m.D, real, c, fake, sub, gp=self.t.ma_gp_k > 0)

    def g_main(self, m, sub: int):
        c = m.reals[0][1]
        fake, _ = self.fake(m, c, "G_main", sub)
        loss = self.loss_fn.g(m.D(fake, c))
        m.stats["loss/G"] = loss.detach()
        return loss
