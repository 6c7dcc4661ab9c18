"""DF-GAN (Tao et al. 2022): one stage, hinge loss, matching-aware D with MA-GP.

    ganscale train configs/text2img/digits_dfgan.yaml
    ganscale train configs/text2img/cub_dfgan.yaml game.text.encoder=encoders/cub.safetensors

Phases, in order:

    D_main  x gan.n_disc   real + w (real, mismatched caption) + f (G(z, c), c), with w = f = 1/2
                           (game.text.wrong_weight / fake_weight), plus MA-GP k * mean ||(dD/dx,
                           dD/ds)||^p on real images with their own sentences (k=2, p=6)
    G_main  the hinge G loss on D(G(z, c), c), plus AttnGAN's DAMSM term when game.text.damsm_weight > 0
"""

from __future__ import annotations

from ganscale.games.text2img import TextGame


class DFGANGame(TextGame):
    name = "dfgan"

    def uses_gp(self) -> bool:
        return self.t.ma_gp_k > 0

    def g_main(self, m, sub: int):
        c = m.reals[0][1]
        fake, _ = self.fake(m, c, "G_main", sub)
        adv = self.loss_fn.g(m.D(fake, c))
        m.stats["loss/G/adv"] = adv.detach()
        loss = adv + self.damsm_term(m, fake, c)
        m.stats["loss/G"] = loss.detach()
        return loss
