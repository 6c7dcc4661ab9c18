"""BiGAN / ALI: G and an encoder E against a joint discriminator D(x, z).

    ganscale data pack ../shared/data/mnist data/mnist-shards
    ganscale train configs/mnist/bigan.yaml                          # BiGAN (deterministic E)
    ganscale train configs/mnist/bigan.yaml game.bigan.encoder=gaussian game.bigan.prior=normal   # ALI
    ganscale encode runs/<run> --data ../shared/data/mnist --split test --out z.npy
    ganscale eval runs/<run>                                         # the latent metrics below
    python benchmarks/bigan.py                                       # docs/bigan.md

D tells real pairs (x, E(x)) from fake pairs (G(z), z); G and E (one player, optim.G) minimise
D's loss with the labels swapped, the non-saturating form of the BiGAN authors' code: for loss.name
(non-saturating by default) GE steps on d_real(D(G(z), z)) + d_fake(D(x, E(x))). At the optimum
E inverts G. Phases, in order (the position is the seed id of their draws):

    D_main   real pairs vs fake pairs; z ~ p(z) (game.bigan.prior), ALI's eps from sub 1
    GE_main  the swapped-label loss through a frozen D, on fresh z and eps

With game.bigan.update=simultaneous (the authors' one forward pass for all three nets) GE_main runs
first and D_main then steps on the pairs GE_main was scored on, as they were before G and E moved.

Evaluation (ganscale.metrics.latent; `ganscale eval`, and during training at trainer.eval_every
and at the end when game.bigan.eval_data is set): 1-NN (euclidean) and linear-probe accuracy of E(x) on MNIST test, fitted on train, and the
reconstruction ratio mean |x - G(E(x))| / mean |x' - G(E(x))| for random pairs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ganscale.errors import UserError
from ganscale.games.base import Game, Phase, Player
from ganscale.losses import get_loss
from ganscale.nets.bigan import BiGANGenerator, Encoder, JointDiscriminator


class BiGANGame(Game):
    name = "bigan"
    players = {"GE": Player(nets=("G", "E"), optim="G"), "D": Player(nets=("D",), optim="D")}
    sample_net = "G"

    def build(self, cfg, info):
        problems = self.check(cfg, info)
        if problems:
            raise UserError("; ".join(problems))
        c, z = cfg.game.bigan, cfg.model.z_dim
        self.cfg, self.loss_fn = cfg, get_loss(cfg.loss.name)
        return {"G": BiGANGenerator(z, info.shape, c.width, c.depth, c.batch_norm, c.prior, c.nets),
                "E": Encoder(info.shape, z, c.width, c.depth, c.batch_norm, c.encoder == "gaussian", c.nets,
                             bounded=c.prior == "uniform"),
                "D": JointDiscriminator(info.shape, z, c.width, c.depth, c.batch_norm, c.nets)}

    def phases(self, cfg):
        d, ge = Phase("D_main", "D", self.d_main), Phase("GE_main", "GE", self.ge_main)
        return [ge, d] if cfg.game.bigan.update == "simultaneous" else [d, ge]

    def start_iteration(self, m, batch: dict) -> None:
        m.x, m.bigan_pairs = batch["x"], None

    def pairs(self, m) -> tuple[Tensor, Tensor]:
        """D's logits on this rank's real pairs (x, E(x)) and fake pairs (G(z), z), with the
        phase's seeded draws of z and (ALI) the reparameterisation noise. Under the simultaneous
        update GE_main keeps its pairs' inputs, detached, and D_main reuses them."""
        x, b = m.x, m.x.shape[0]
        if getattr(m, "bigan_pairs", None) is not None and m.phase == "D_main":
            code, fake, z = m.bigan_pairs
        else:
            z = m.noise(b)
            eps = None
            if m.E.stochastic:
                eps = m.draw(b, lambda n, g: torch.randn(n, m.E.z_dim, generator=g, device=m.device), sub=1)
            code, fake = m.E.sample(x, eps), m.G(z)
            if self.cfg.game.bigan.update == "simultaneous" and m.phase == "GE_main":
                m.bigan_pairs = (code.detach(), fake.detach(), z)
        return m.D(x, code), m.D(fake, z)

    def d_main(self, m, sub: int) -> Tensor:
        real, fake = self.pairs(m)  # G and E are frozen in this phase: no graph to them
        loss_real, loss_fake = self.loss_fn.d_real(real), self.loss_fn.d_fake(fake)
        m.stats.update({"loss/D/real": loss_real.detach(), "loss/D/fake": loss_fake.detach(),
                        "loss/D": (loss_real + loss_fake).detach(),
                        "D/real": real.detach().mean(), "D/fake": fake.detach().mean()})
        return loss_real + loss_fake

    def ge_main(self, m, sub: int) -> Tensor:
        real, fake = self.pairs(m)
        loss_g, loss_e = self.loss_fn.d_real(fake), self.loss_fn.d_fake(real)  # the labels swapped
        m.stats.update({"loss/G": loss_g.detach(), "loss/E": loss_e.detach()})
        return loss_g + loss_e

    def callbacks(self, cfg, run_dir: str) -> list:
        if not cfg.game.bigan.eval_data:
            return []
        from ganscale.metrics.latent import LatentEvaluation

        return [LatentEvaluation(cfg, run_dir)]

    def evaluate(self, m, cfg) -> dict:
        """`ganscale eval RUN`: 1-NN and linear-probe accuracy on E(x), the reconstruction ratio."""
        from ganscale.metrics.latent import evaluate_encoder

        c = cfg.game.bigan
        if not c.eval_data:
            raise UserError("game.bigan.eval_data is empty; pass game.bigan.eval_data=MNIST_DIR (the IDX files)")
        return evaluate_encoder(m.G, m.E, c.eval_data, c.eval_train_images, c.eval_test_images)

    def check(self, cfg, info) -> list[str]:
        problems = []
        if cfg.game.condition == "class" or (cfg.game.condition == "auto" and cfg.model.conditional):
            problems.append("game.name=bigan is unsupervised: set game.condition=none (no label may reach it)")
        return problems
