"""Semi-supervised GAN with feature matching (Salimans et al. 2016, openai/improved-gan).

    ganscale train configs/mnist/ssl_gan.yaml                              # 100 labels (10 per class)
    ganscale predict RUN --data ../shared/data/mnist --split test --out preds.npy
    ganscale eval RUN                                                       # test errors of D's average

D is a K-class classifier with the fake logit fixed at 0 (ganscale.games.objectives). Per iteration:

    D_main  supervised CE on the labelled batch (x_lab, y_lab) + unlabelled_weight x the real/fake
            terms on the first unlabelled chunk of x and on G's samples
    G_main  feature matching: mean squared difference of D's last-hidden-layer means (before its
            noise) on the second unlabelled chunk of x (the reference's second permutation,
            trainx_unl2; the config's gan.n_disc=2 makes x carry two chunks) and on G's samples
    then    D_ema (gan.ema, the reference's Polyak average of D) is what predict and eval classify with

Only `y_lab` (data.digits's labelled stream) reaches a loss; the unlabelled stream's `y`, when a
batch carries one, is never read. Every random draw (G's noise, D's Gaussian noise) is one of the
engine's seeded global draws.
"""

from __future__ import annotations

import torch

from ganscale.data.digits import first_images
from ganscale.errors import UserError
from ganscale.games.base import Game, Phase, Player
from ganscale.games.objectives import feature_matching, ssl_supervised_loss, ssl_unsupervised_loss
from ganscale.nets.ssl import SSLDiscriminator, SSLGenerator

NOISE_SUB = {"lab": 1, "unl": 2, "fake": 3}  # seed ids of D's noise per call (G's noise uses 0)


class SSLGANGame(Game):
    name = "ssl_gan"
    players = {"G": Player(nets=("G",), optim="G"), "D": Player(nets=("D",), optim="D")}
    ema_of = "D"      # Polyak average of the classifier
    sample_net = "G"

    def build(self, cfg, info):
        c = cfg.game.ssl
        self.cfg, self.chunks = c, cfg.gan.n_disc  # 1: G reuses D's unlabelled chunk; 2: its own
        D = SSLDiscriminator(info.shape, c.d_widths, c.num_classes, c.input_noise, c.hidden_noise)
        if c.init_batch > 0:  # before any optimizer or strategy sees D; the same on every rank
            x = first_images(cfg, c.init_batch)  # with D's noise on, as the reference's init pass
            noise = torch.randn(len(x), D.noise_dim, generator=torch.Generator().manual_seed(cfg.seed))
            D.init_from_data(x, noise)
        return {"G": SSLGenerator(c.z_dim, c.g_width, info.shape, c.g_batchnorm), "D": D}

    def phases(self, cfg):
        return [Phase("D_main", "D", self.d_main), Phase("G_main", "G", self.g_main)]

    def start_iteration(self, m, batch):
        if "x_lab" not in batch:
            raise UserError("game.name=ssl_gan needs a labelled stream: data.kind=digits with "
                            "data.digits.labelled_per_class > 0")
        x = batch["x"]
        b = len(x) // self.chunks  # per-rank chunk
        self.x, self.x_g = x[:b], x[-b:]
        self.x_lab, self.y_lab = batch["x_lab"], batch["y_lab"]  # never batch["y"]

    def d(self, m, x, call):
        """D's (logits, features) on x with this phase's seeded noise for `call`."""
        noise = m.draw(len(x), lambda n, g: torch.randn(n, m.D.noise_dim, generator=g, device=m.device),
                       sub=NOISE_SUB[call])
        return m.D(x, noise)

    def d_main(self, m, sub):
        with torch.no_grad():
            fake = m.G(m.noise(len(self.x)))
        logits_lab, _ = self.d(m, self.x_lab, "lab")
        sup = ssl_supervised_loss(logits_lab, self.y_lab)
        unsup = ssl_unsupervised_loss(self.d(m, self.x, "unl")[0], self.d(m, fake, "fake")[0])
        m.stats.update({"loss/D/supervised": sup.detach(), "loss/D/unsupervised": unsup.detach(),
                        "D/train_error": (logits_lab.argmax(1) != self.y_lab).float().mean()})
        loss = sup + self.cfg.unlabelled_weight * unsup
        m.stats["loss/D"] = loss.detach()
        return loss

    def g_main(self, m, sub):
        fake = m.G(m.noise(len(self.x_g)))
        loss = feature_matching(self.d(m, self.x_g, "unl")[1], self.d(m, fake, "fake")[1], m.global_mean)
        m.stats["loss/G"] = loss.detach()
        return loss

    # ---------------------------------------------------------------- evaluation (ganscale.metrics.ssl)
    def predict(self, m, x):
        from ganscale.metrics.ssl import predict_classes

        return predict_classes(m.D_ema.module if m.ema_name else m.D, x)

    def evaluate(self, m, cfg):
        from ganscale.metrics.ssl import test_error

        return test_error(self.predict, m, cfg.data.digits.path)
