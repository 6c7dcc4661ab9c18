"""InfoGAN (Chen et al. 2016, openai/InfoGAN): codes in G's latent that Q recovers from G's images.

    ganscale train configs/mnist/infogan.yaml
    ganscale sample RUN --code cat=3 --code c0=-1.5 --num 100 --out grid.png   # + grid_traversal_c*.png
    ganscale eval RUN                # Q's categorical accuracy on the test digits (Hungarian matching)

G's latent is [noise U(-1,1)^62 | one-hot category ~ U{0..9} | 2 codes U(-1,1)] (ganscale.nets.infogan).
Q is a head on D's trunk, trained by D's player (one optimizer over D and Q, as the reference's
d_ variables). L_I = L_I(category) + L_I(continuous) (ganscale.games.objectives). Per iteration:

    D_main  D+Q: GAN loss on x and G(z) - info_weight * L_I(codes of z, Q(D's trunk of G(z)))
    G_main  G:   non-saturating loss on G(z) - info_weight * L_I, through frozen D and Q
"""

from __future__ import annotations

import torch

from ganscale.games.base import Game, Phase, Player
from ganscale.games.objectives import infogan_mi_categorical, infogan_mi_continuous
from ganscale.losses import get_loss
from ganscale.nets.infogan import InfoDiscriminator, InfoGenerator, InfoQ


class InfoGANGame(Game):
    name = "infogan"
    players = {"G": Player(nets=("G",), optim="G"), "D": Player(nets=("D", "Q"), optim="D")}
    sample_net = "G"

    def build(self, cfg, info):
        c = self.cfg = cfg.game.infogan
        self.loss = get_loss("nonsaturating")
        return {"G": InfoGenerator(c.noise_dim, c.num_categories, c.num_continuous, c.batchnorm, c.width, c.ch,
                                   c.init),
                "D": InfoDiscriminator(c.batchnorm, c.width, c.ch, c.slope, c.init),
                "Q": InfoQ(c.num_categories, c.num_continuous, c.batchnorm, c.width, c.slope, c.init)}

    def phases(self, cfg):
        return [Phase("D_main", "D", self.d_main), Phase("G_main", "G", self.g_main)]

    def start_iteration(self, m, batch):
        self.x = batch["x"]

    def info(self, m, z, features):
        """L_I of the codes in z, from Q on the D trunk features of G(z)."""
        _, cat, cont = m.G.split_latent(z)
        logits, mean = m.Q(features)
        li_cat, li_cont = infogan_mi_categorical(logits, cat), infogan_mi_continuous(mean, cont)
        m.stats.update({"info/L_I_cat": li_cat.detach(), "info/L_I_cont": li_cont.detach(),
                        "info/Q_cat_acc": (logits.argmax(1) == cat).float().mean()})
        return li_cat + li_cont

    def d_main(self, m, sub):
        z = m.noise(len(self.x))
        with torch.no_grad():
            fake = m.G(z)
        (r, _), (f, features) = m.D(self.x), m.D(fake)
        gan = self.loss.d_real(r) + self.loss.d_fake(f)
        m.stats.update({"loss/D/gan": gan.detach(), "D/real": r.detach().mean(), "D/fake": f.detach().mean()})
        loss = gan - self.cfg.info_weight * self.info(m, z, features)
        m.stats["loss/D"] = loss.detach()
        return loss

    def g_main(self, m, sub):
        z = m.noise(len(self.x))
        f, features = m.D(m.G(z))
        loss = self.loss.g(f) - self.cfg.info_weight * self.info(m, z, features)
        m.stats["loss/G"] = loss.detach()
        return loss

    # ---------------------------------------------------------------- sampling and evaluation
    def sample_with_codes(self, m, n, seed, codes):
        from ganscale.metrics.infogan import sample_with_codes

        return sample_with_codes(m.G, n, seed, codes)

    def traversals(self, m, seed):
        from ganscale.metrics.infogan import traversal

        return {f"c{j}": traversal(m.G, j, seed) for j in range(self.cfg.num_continuous)}

    def evaluate(self, m, cfg):
        from ganscale.metrics.infogan import categorical_accuracy

        return categorical_accuracy(m.D, m.Q, cfg.data.digits.path)
