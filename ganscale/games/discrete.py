"""G with discrete outputs against D: binary images through one of four gradient estimators.

    ganscale train configs/mnist/binary.yaml                                  # Gumbel-softmax, straight-through
    ganscale train configs/mnist/binary.yaml model.discrete.estimator=bgan    # or gumbel, reinforce
    python benchmarks/binary_mnist.py                                         # all four, docs/discrete.md

G is any unbounded-output family read as per-pixel Bernoulli logits (ganscale.nets.discrete.
bernoulli); real images are binarized at model.discrete.threshold. `model.discrete.estimator`:

    gumbel      D sees binary-concrete relaxations sigmoid((l + n) / tau), tau annealed
    gumbel_st   D sees the exact {0, 1} draw; the gradient is the relaxation's (straight-through)
    reinforce   surrogate -(r - b) log p(x), r = -(G's per-sample loss) = log D(x) for the
                nonsaturating loss, b a moving average of the global batch's mean reward
    bgan        -sum_m w_m log p(x_m | z) over M draws per z, w = softmax_m(D logit) (Hjelm et al. 2018)

Phases are the GAN's (ganscale/games/gan.py; the position is the seed id of their draws):

    D_main  x gan.n_disc   D on a chunk of binarized reals and fresh fakes (relaxed for gumbel),
                           + GP when reg.gp_weight
    D_reg   lazy R1 when reg.r1_gamma > 0
    G_main  the estimator's loss
"""

from __future__ import annotations

import torch
from torch import Tensor

from ganscale.errors import UserError
from ganscale.games.gan import GANGame
from ganscale.nets.discrete.bernoulli import BernoulliGenerator
from ganscale.nets.discrete.estimators import (bernoulli_log_prob, bgan_loss, binary_concrete, reinforce_loss,
                                               temperature_at, update_baseline)

def unbounded_g(model_cfg) -> bool:
    """Whether G ends without a squashing activation (its output can be logits): the MLP always
    (a linear layer), DCGAN with `model.dcgan.G_output: logits`; the other image families end in tanh."""
    return model_cfg.arch == "mlp" or (model_cfg.arch == "dcgan" and model_cfg.dcgan.G_output == "logits")


def binarize(x: Tensor, threshold: float) -> Tensor:
    """Images in [-1, 1] -> {-1, 1}: a pixel whose [0, 1] value exceeds `threshold` is 1."""
    return torch.where((x + 1) / 2 > threshold, 1.0, -1.0).to(x.dtype)


class DiscreteGame(GANGame):
    """The GAN's players, phases, D loss and regularizers (R1, GP, spectral norm); G's samples
    are discrete and its loss is the estimator's."""

    name = "discrete"

    def build(self, cfg, info):
        problems = []
        if not unbounded_g(cfg.model):
            problems.append(f"game.name=discrete reads G's output as Bernoulli logits and needs a G with an "
                            f"unbounded output: set model.arch=mlp, or model.arch=dcgan with "
                            f"model.dcgan.G_output=logits (model.arch={cfg.model.arch!r} ends in tanh)")
        if cfg.model.discrete.estimator == "bgan" and cfg.loss.name not in ("minimax", "nonsaturating"):
            problems.append(f"model.discrete.estimator=bgan weighs samples by D/(1-D) = exp(logit), which needs a "
                            f"sigmoid D: set loss.name=nonsaturating or minimax (not {cfg.loss.name!r})")
        if cfg.unroll.steps > 0 or cfg.model.remedies.feature_matching.weight > 0:
            problems.append("game.name=discrete trains G with its estimator's loss only: set unroll.steps=0 and "
                            "model.remedies.feature_matching.weight=0")
        if problems:
            raise UserError("; ".join(problems))
        nets = super().build(cfg, info)
        self.dc = cfg.model.discrete
        G = BernoulliGenerator(nets["G"], info.shape)
        # REINFORCE's moving-average baseline: a buffer, so checkpoints and resumes carry it
        G.register_buffer("reward_baseline", torch.zeros(()))
        return {"G": G, "D": nets["D"]}

    def start_iteration(self, m, batch: dict) -> None:
        super().start_iteration(m, {**batch, "x": binarize(batch["x"], self.dc.threshold)})

    def tau(self, m) -> float:
        return temperature_at(m.iteration, self.dc.tau_start, self.dc.tau_end, self.dc.tau_anneal_iters)

    def fake(self, m, z: Tensor, y, hard: bool) -> Tensor:
        """G's samples in [-1, 1]: the relaxation (`hard=False`, gumbel) or the exact draw with the
        relaxation's gradient (`hard=True`: gumbel_st's G step and every hard estimator's D input)."""
        latent, noise = m.G.split(z)
        return 2 * binary_concrete(m.G.logits(latent, y), self.tau(m), noise, hard=hard) - 1

    # ----------------------------------------------------------------- D
    def d_main(self, m, sub: int) -> Tensor:
        real, y_real = m.reals[sub]
        b = real.shape[0]
        with torch.no_grad():
            y_fake = m.condition.fake(m, b, y_real, "D_main", sub)
            fake = self.fake(m, m.noise(b, "D_main", sub), y_fake, hard=self.dc.estimator != "gumbel")
        loss, stats = self.d_main_loss(m, m.D, real, y_real, fake, y_fake, m._phase_generator("D_main", sub + 4))
        m.stats.update(stats)
        m.stats["discrete/ones"] = (fake > 0).float().mean()
        return loss

    # ----------------------------------------------------------------- G
    def per_sample_g_loss(self, logits: Tensor) -> Tensor:
        """G's loss of each sample (the loss's `g` on one logit at a time): -reward."""
        return torch.vmap(lambda l: self.loss_fn.g(l.reshape(1)))(logits)

    def g_main(self, m, sub: int) -> Tensor:
        b = m.reals[0][0].shape[0]
        y = m.condition.fake(m, b, m.reals[-1][1], "G_main")
        z = m.noise(b, "G_main")
        est = self.dc.estimator
        if est in ("gumbel", "gumbel_st"):
            m.stats["discrete/tau"] = torch.tensor(self.tau(m))
            loss = self.loss_fn.g(m.D(self.fake(m, z, y, hard=est == "gumbel_st"), y))
        elif est == "reinforce":
            loss = self.reinforce(m, z, y)
        else:
            loss = self.bgan(m, z, y, b)
        m.stats["loss/G"] = loss.detach()
        return loss

    def reinforce(self, m, z: Tensor, y) -> Tensor:
        latent, noise = m.G.split(z)
        logits = m.G.logits(latent, y)
        x = (logits.detach() + noise > 0).to(logits.dtype)
        with torch.no_grad():
            reward = -self.per_sample_g_loss(m.D(2 * x - 1, y))
            mean_reward = m.global_mean(reward.mean())
            used = update_baseline(m.G.reward_baseline, mean_reward, self.dc.baseline_decay, m.iteration == 0)
        m.stats.update({"discrete/reward": mean_reward, "discrete/baseline": used})
        return reinforce_loss(bernoulli_log_prob(logits, x), reward, used)

    def bgan(self, m, z: Tensor, y, b: int) -> Tensor:
        G, M = m.G, self.dc.bgan_samples
        latent, noise0 = G.split(z)
        # M - 1 more draws per z (the first comes with z), seeded like every other draw
        u = m.draw(b, lambda n, g: torch.rand(n, M - 1, G.noise_dim, generator=g, device=m.device), "G_main", 4)
        extra = torch.stack([G.split(torch.cat([latent, u[:, j]], 1))[1] for j in range(M - 1)], 1)
        noise = torch.cat([noise0.unsqueeze(1), extra], 1)  # [b, M, *shape]
        logits = G.logits(latent, y).unsqueeze(1).expand_as(noise)
        x = (logits.detach() + noise > 0).to(logits.dtype)
        flat = lambda t: t.reshape(b * M, *t.shape[2:])  # noqa: E731
        y_rep = None if y is None else y.repeat_interleave(M, 0)
        with torch.no_grad():
            d = m.D(2 * flat(x) - 1, y_rep).view(b, M)
        m.stats["discrete/D_fake"] = d.mean()
        return bgan_loss(bernoulli_log_prob(flat(logits), flat(x)).view(b, M), d)
