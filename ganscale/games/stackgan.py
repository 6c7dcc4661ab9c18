"""StackGAN (Zhang et al. 2017): conditioning augmentation, matching-aware D, Stage-I then Stage-II.

    ganscale train configs/text2img/digits_stackgan.yaml                      # Stage-I, 64 px
    ganscale train configs/text2img/cub_stackgan.yaml model.stackgan.stage=2 \\
        game.text.stage1=runs/cub_stackgan_s1                                 # Stage-II on a frozen Stage-I

Phases, in order:

    D_main  x gan.n_disc   real + 1/2 wrong (real, mismatched caption) + 1/2 fake (the loss.name terms)
    G_main  G's loss on D(G(z, c_hat), c) + KL weight (2.0) * KL(N(mu, sigma) || N(0, I)) of the
            conditioning augmentation, whose noise comes from the engine's seeded global draws

Stage-II: G.stage1 is the Stage-I run's generator (its EMA when it has one), loaded from
game.text.stage1 and frozen; only the Stage-II layers train.
"""

from __future__ import annotations

import torch

from ganscale.errors import UserError
from ganscale.games.text2img import TextGame
from ganscale.losses_text import ca_kl


def kl_term(game, m, extras: dict) -> torch.Tensor:
    kl = ca_kl(extras["mu"], extras["logvar"])
    m.stats["loss/G/kl"] = kl.detach()
    return game.t.kl_weight * kl


class StackGANGame(TextGame):
    name = "stackgan"

    def build(self, cfg, info):
        nets = super().build(cfg, info)
        if cfg.model.stackgan.stage == 2:
            load_stage1(nets["G"], cfg.game.text.stage1)
        return nets

    def g_main(self, m, sub: int):
        c = m.reals[0][1]
        fake, extras = self.fake(m, c, "G_main", sub)
        adv = self.loss_fn.g(m.D(fake, c))
        m.stats["loss/G/adv"] = adv.detach()
        loss = adv + kl_term(self, m, extras) + self.damsm_term(m, fake, c)
        m.stats["loss/G"] = loss.detach()
        return loss


def load_stage1(G, source: str) -> None:
    """Copy a trained Stage-I generator (a run directory or checkpoint) into G.stage1, frozen."""
    if not source:
        raise UserError("model.stackgan.stage=2 trains on a frozen Stage-I: set game.text.stage1=RUN_DIR_OR_CKPT "
                        "(a finished Stage-I run)")
    from ganscale.train.restore import load_module

    stage1 = load_module(source)
    src = stage1.sampler
    if getattr(stage1.cfg.model, "arch", "") != "stackgan" or stage1.cfg.model.stackgan.stage != 1:
        raise UserError(f"game.text.stage1={source} is not a StackGAN Stage-I run")
    try:
        G.stage1.load_state_dict(src.state_dict())
    except RuntimeError as e:
        raise UserError(f"game.text.stage1={source}: its generator does not fit this Stage-II's Stage-I "
                        f"(model.stackgan widths must match: {str(e)[:200]})") from None
    G.stage1.requires_grad_(False)
