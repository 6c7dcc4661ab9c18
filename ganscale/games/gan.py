"""The GAN: G against D (Goodfellow et al. 2014), with everything the config sections add.

    ganscale train                                        # the default job (configs/toy/ring.yaml)
    ganscale train configs/mnist/dcgan.yaml               # class-conditional: y from the batch

Phases, in order (the position is the seed id of their draws):

    D_main  x gan.n_disc   each on its own chunk of real data and fresh noise (+ GP when reg.gp_weight)
    D_reg   every reg.r1_interval iterations when reg.r1_gamma > 0: lazy R1, interval-corrected
    G_main  G's adversarial loss through a frozen D, or through D after unroll.steps differentiable
            look-ahead updates (ganscale.train.unroll); feature matching when
            model.remedies.feature_matching.weight > 0; plus the net family's every-step penalty
            (BigGAN's orthogonal regularization) in the same step
    G_reg   the net family's lazy G penalty (`G.lazy_regularization()`), when it has one

The condition is game.condition's kind (ganscale.conditions): the class label `y` of labelled
data, fakes labelled as game.fake_labels says; none for unconditional data.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ganscale.games.base import Game, Phase, Player
from ganscale.losses import get_loss
from ganscale.nets import build_nets
from ganscale.nets.remedies import feature_matching_loss
from ganscale.regularizers import apply_configured_spectral_norm, gradient_penalty, r1_penalty
from ganscale.train.unroll import DLookahead, FunctionalD


class GANGame(Game):
    name = "gan"
    players = {"G": Player(nets=("G",), optim="G"), "D": Player(nets=("D",), optim="D")}
    ema_of = "G"
    sample_net = "G"

    def build(self, cfg, info):
        G, D = build_nets(cfg.model, info)
        apply_configured_spectral_norm(cfg.reg.spectral_norm, {"G": G, "D": D})
        self.cfg = cfg
        self.loss_fn = get_loss(cfg.loss.name)
        return {"G": G, "D": D}

    def phases(self, cfg):
        return [
            Phase("D_main", "D", self.d_main, repeat=cfg.gan.n_disc),
            Phase("D_reg", "D", self.d_reg, every=cfg.reg.r1_interval, enabled=cfg.reg.r1_gamma > 0),
            Phase("G_main", "G", self.g_main),
            Phase("G_reg", "G", self.g_reg),
        ]

    def start_iteration(self, m, batch: dict) -> None:
        """m.reals: this iteration's (real, y) chunks, one per D step; the G phase's look-ahead
        and feature matching use them."""
        x = batch["x"]
        b = x.shape[0] // self.cfg.gan.n_disc  # per-rank batch
        rows = [slice(i * b, (i + 1) * b) for i in range(self.cfg.gan.n_disc)]
        m.reals = [(x[r], m.condition.real(m, batch, r)) for r in rows]

    # ----------------------------------------------------------------- D
    def d_main_loss(self, m, d, real: Tensor, y_real: Optional[Tensor], fake: Tensor, y_fake: Optional[Tensor],
                    gp_generator: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        """D's loss in the D_main phase, for the D callable `d` (m.D, or D inside an unrolled
        look-ahead step, which minimises exactly this loss), and its detached stats."""
        r, f = d(real, y_real), d(fake, y_fake)
        loss_real, loss_fake = self.loss_fn.d_real(r), self.loss_fn.d_fake(f)
        loss = loss_real + loss_fake
        stats = {}
        if self.cfg.reg.gp_weight > 0:
            b = real.shape[0]
            eps = m.draw(b, lambda n, g: torch.rand(n, *([1] * (real.dim() - 1)), generator=g, device=m.device),
                         generator=gp_generator)
            gp = gradient_penalty(lambda t: d(t, y_real), real, fake, self.cfg.reg.gp_center, eps)
            loss = loss + self.cfg.reg.gp_weight * gp
            stats["reg/D/gp"] = gp.detach()
        stats.update({
            "loss/D/real": loss_real.detach(), "loss/D/fake": loss_fake.detach(), "loss/D": loss.detach(),
            "D/real": r.detach().mean(), "D/fake": f.detach().mean(),
        })
        return loss, stats

    def d_main(self, m, sub: int) -> Tensor:
        real, y_real = m.reals[sub]
        b = real.shape[0]
        with torch.no_grad():
            y_fake = m.condition.fake(m, b, y_real, "D_main", sub)
            fake = m.G(m.noise(b, "D_main", sub), y_fake)
        loss, stats = self.d_main_loss(m, m.D, real, y_real, fake, y_fake, m._phase_generator("D_main", sub + 4))
        m.stats.update(stats)
        return loss

    def d_reg(self, m, sub: int) -> Tensor:
        real, y_real = m.reals[-1]
        r1 = r1_penalty(lambda t: m.D(t, y_real), real)
        m.stats["reg/D/r1"] = r1.detach()
        return 0.5 * self.cfg.reg.r1_gamma * self.cfg.reg.r1_interval * r1

    # ----------------------------------------------------------------- G
    def unrolled_D(self, m, reals: Sequence[tuple[Tensor, Optional[Tensor]]]) -> FunctionalD:
        """D after unroll.steps look-ahead updates from its current state (ganscale.train.unroll).
        Look-ahead step j minimises d_main_loss on real chunk j mod n_disc of this iteration and on
        fresh fakes of G (drawn from the G_main phase's generators 1/5/9), kept in the graph for
        second order."""
        if not reals:
            raise ValueError("the unrolled G loss needs this iteration's real chunks in m.reals")
        b = reals[0][0].shape[0]
        g_z, g_y, g_eps = (m._phase_generator("G_main", s) for s in (1, 9, 5))

        def step_loss(j: int, d: FunctionalD, keep_graph: bool) -> Tensor:
            real, y_real = reals[j % len(reals)]
            z, y_fake = m.noise(b, "G_main", generator=g_z), m.condition.fake(m, b, y_real, generator=g_y)
            with torch.set_grad_enabled(keep_graph):  # first order needs no graph to G here
                fake = m.G(z, y_fake)
            loss, stats = self.d_main_loss(m, d, real, y_real, fake, y_fake, g_eps)
            m.stats["unroll/loss/D"] = stats["loss/D"]
            return loss

        # under ZeRO, D's optimizer state is partitioned: the strategy gives a full view of it
        lookahead = DLookahead(m.D, m.hooks.unroll_optimizer(m, "D"), self.cfg.unroll.steps,
                               self.cfg.unroll.second_order, grad_sync=m.hooks.unroll_grad_sync)
        return lookahead.run(step_loss)

    def g_loss(self, m, b: int) -> Tensor:
        reals = m.reals
        y_fake = m.condition.fake(m, b, reals[-1][1], "G_main")
        fake = m.G(m.noise(b, "G_main"), y_fake)
        d = self.unrolled_D(m, reals) if self.cfg.unroll.steps > 0 else m.D
        fm = self.cfg.model.remedies.feature_matching
        if fm.weight == 0:
            return self.loss_fn.g(d(fake, y_fake))
        logits, features = d(fake, y_fake, return_features=True)
        real, y_real = reals[-1]
        _, real_features = d(real, y_real, return_features=True)
        loss_fm = feature_matching_loss(real_features, features)
        m.stats["loss/G/feature_matching"] = loss_fm.detach()
        loss = fm.weight * loss_fm
        if fm.adversarial_weight > 0:
            loss = loss + fm.adversarial_weight * self.loss_fn.g(logits)
        return loss

    def g_main(self, m, sub: int) -> Tensor:
        loss = self.g_loss(m, m.reals[0][0].shape[0])
        m.stats["loss/G"] = loss.detach()
        penalty = m.G.regularization() if hasattr(m.G, "regularization") else None
        if penalty is not None:
            # in the same step: a separate Adam step would rescale a small penalty (BigGAN's
            # beta = 1e-4) to a full learning-rate-sized update
            loss = loss + penalty
            m.stats["reg/G/net"] = penalty.detach()
        return loss

    def g_reg(self, m, sub: int) -> Optional[Tensor]:
        """The net family's lazy G penalty with its own step (e.g. path length), or None."""
        loss = m.G.lazy_regularization() if hasattr(m.G, "lazy_regularization") else None
        if loss is not None:
            m.stats["reg/G"] = loss.detach()
        return loss
