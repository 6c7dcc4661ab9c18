"""SeqGAN (Yu et al. 2017): an LSTM generator of token sequences, trained by MLE and against a CNN D.

    ganscale data synth oracle-sequences data/oracle --vocab 5000 --length 20 --num 10000
    ganscale train configs/sequences/seqgan.yaml                     # MLE pretraining, then adversarial
    ganscale train configs/sequences/seqgan.yaml model.discrete.sequence.mode=mle    # the MLE baseline
    ganscale train configs/sequences/seqgan.yaml model.discrete.estimator=gumbel_st  # gumbel | reinforce | bgan
    ganscale eval runs/<run>                                         # NLL under the oracle of 10k samples
    python benchmarks/seqgan_oracle.py                               # docs/discrete.md, sequence section

Networks (ganscale.nets.discrete.sequence): G an LSTM language model of the oracle's size, D a
small CNN classifier. Phases, in order (the position is the seed id of their draws):

    D_main x gan.n_disc  adversarial mode, from pretrain_iters - d_warmup_iters: D on a chunk of real
                         sequences and G's samples (hard tokens; the relaxed one-hots for gumbel)
    G_mle                mle mode always, adversarial mode before pretrain_iters: teacher forcing,
                         mean NLL per token of the batch's real sequences
    G_main               adversarial mode from pretrain_iters: model.discrete.estimator's loss
                           gumbel / gumbel_st  D on G's Gumbel-softmax sequences (each relaxed token
                                               fed back as G's next input), straight-through for _st
                           reinforce           -mean_t (Q_t - b) log p(x_t | x_<t), Q the reward
                                               log D(x) (the loss's -g per sample) or SeqGAN's D(x)
                                               (sequence.reward=prob): the sequence's for every token,
                                               or SeqGAN's Monte Carlo rollout rewards
                                               (model.discrete.sequence.rollouts = K); b a moving
                                               average of the global batch's mean reward, or 0
                                               (sequence.baseline=false, SeqGAN's)
                         every sequence.g_every-th iteration, at G's learning rate sequence.adv_lr
                           bgan                groups of bgan_samples sequences, -sum_m w_m log p(x_m),
                                               w = softmax of D's logits in the group

G's samples come from `m.noise` (one uniform per token) and the Gumbel noise from `m.draw`, so N
ranks equal one process and resumes are exact. The evaluation (ganscale.metrics.oracle) scores
G's samples by their NLL under the oracle the shards were drawn from.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ganscale.errors import UserError
from ganscale.games.base import Game, Phase, Player
from ganscale.losses import get_loss
from ganscale.nets.discrete.estimators import (bgan_loss, reinforce_loss, sample_gumbel, temperature_at,
                                               update_baseline)
from ganscale.nets.discrete.sequence import SequenceDiscriminator, SequenceGenerator


class SeqGANGame(Game):
    name = "seqgan"
    players = {"G": Player(nets=("G",), optim="G"), "D": Player(nets=("D",), optim="D")}
    ema_of = "G"
    sample_net = "G"

    def build(self, cfg, info):
        dc, sc = cfg.model.discrete, cfg.model.discrete.sequence
        problems = []
        if info.kind != "tokens":
            problems.append(f"game.name=seqgan trains on token sequences, not {info.kind} data: set data.kind=shards "
                            "with shards from `ganscale data synth oracle-sequences OUT` (data.shards.urls=OUT)")
        if dc.estimator == "reinforce" and sc.reward == "prob" and cfg.loss.name not in ("minimax", "nonsaturating"):
            problems.append("model.discrete.sequence.reward=prob rewards D(x) = sigmoid(logit), which needs a sigmoid "
                            f"D: set loss.name=nonsaturating or minimax (not {cfg.loss.name!r}), or reward=log_d")
        if dc.estimator == "bgan" and cfg.loss.name not in ("minimax", "nonsaturating"):
            problems.append(f"model.discrete.estimator=bgan weighs samples by D/(1-D) = exp(logit), which needs a "
                            f"sigmoid D: set loss.name=nonsaturating or minimax (not {cfg.loss.name!r})")
        if cfg.reg.gp_weight > 0 or cfg.reg.r1_gamma > 0 or cfg.unroll.steps > 0:
            problems.append("game.name=seqgan has no gradient penalty, R1 or unrolling (D reads discrete tokens): "
                            "set reg.gp_weight=0, reg.r1_gamma=0 and unroll.steps=0")
        if problems:
            raise UserError("; ".join(problems))
        self.cfg, self.dc, self.sc = cfg, dc, sc
        self.loss_fn = get_loss(cfg.loss.name)
        G = SequenceGenerator(info.vocab, info.shape[0], sc.emb, sc.hidden)
        # REINFORCE's moving-average baseline: a buffer, so checkpoints and resumes carry it
        G.register_buffer("reward_baseline", torch.zeros(()))
        D = SequenceDiscriminator(info.vocab, info.shape[0], sc.d_emb, sc.d_windows, sc.d_channels)
        return {"G": G, "D": D}

    def phases(self, cfg):
        adversarial = cfg.model.discrete.sequence.mode == "adversarial"
        return [Phase("D_main", "D", self.d_main, repeat=cfg.gan.n_disc, enabled=adversarial),
                Phase("G_mle", "G", self.g_mle),
                Phase("G_main", "G", self.g_main, every=cfg.model.discrete.sequence.g_every, enabled=adversarial)]

    def player_lr(self, m, player: str, lr: float) -> float:
        """G's learning rate from pretrain_iters on is sequence.adv_lr (when set)."""
        if player == "G" and self.sc.adv_lr and self.adversarial_g(m):
            return self.sc.adv_lr
        return lr

    def start_iteration(self, m, batch: dict) -> None:
        """m.reals: this iteration's real token chunks, one per D step."""
        x = batch["x"]
        b = x.shape[0] // self.cfg.gan.n_disc
        m.reals = [x[i * b:(i + 1) * b] for i in range(self.cfg.gan.n_disc)]

    def adversarial_g(self, m) -> bool:
        return self.sc.mode == "adversarial" and m.iteration >= self.sc.pretrain_iters

    def tau(self, m) -> float:
        """The Gumbel-softmax temperature, annealed from the first adversarial iteration."""
        it = max(0, m.iteration - self.sc.pretrain_iters)
        return temperature_at(it, self.dc.tau_start, self.dc.tau_end, self.dc.tau_anneal_iters)

    def gumbel(self, m, b: int, sub: int) -> Tensor:
        G = m.G
        return m.draw(b, lambda n, g: sample_gumbel((n, G.length, G.vocab), g, m.device), sub=sub)

    # ----------------------------------------------------------------- D
    def d_main(self, m, sub: int) -> Optional[Tensor]:
        if m.iteration < self.sc.pretrain_iters - self.sc.d_warmup_iters:
            return None
        real = m.reals[sub]
        b = real.shape[0]
        with torch.no_grad():
            if self.dc.estimator == "gumbel":  # D learns to tell the relaxation G's gradient comes through
                fake = m.G.relaxed(self.gumbel(m, b, sub + 4), self.tau(m), hard=False)
            else:
                fake = m.G(m.noise(b, sub=sub))
        r, f = m.D(real), m.D(fake)
        loss_real, loss_fake = self.loss_fn.d_real(r), self.loss_fn.d_fake(f)
        loss = loss_real + loss_fake
        m.stats.update({"loss/D/real": loss_real.detach(), "loss/D/fake": loss_fake.detach(),
                        "loss/D": loss.detach(), "D/real": r.detach().mean(), "D/fake": f.detach().mean()})
        return loss

    # ----------------------------------------------------------------- G
    def g_mle(self, m, sub: int) -> Optional[Tensor]:
        """Teacher forcing: the mean NLL per token of this iteration's real sequences."""
        if self.adversarial_g(m):
            return None
        loss = -m.G.log_probs(torch.cat(m.reals)).mean()
        m.stats["loss/G/mle"] = loss.detach()
        return loss

    def g_main(self, m, sub: int) -> Optional[Tensor]:
        if not self.adversarial_g(m):
            return None
        b, est = m.reals[0].shape[0], self.dc.estimator
        if est in ("gumbel", "gumbel_st"):
            m.stats["discrete/tau"] = torch.tensor(self.tau(m))
            loss = self.loss_fn.g(m.D(m.G.relaxed(self.gumbel(m, b, 4), self.tau(m), hard=est == "gumbel_st")))
        elif est == "reinforce":
            loss = self.reinforce(m, b)
        else:
            loss = self.bgan(m, b)
        m.stats["loss/G"] = loss.detach()
        return loss

    def reward(self, m, tokens: Tensor) -> Tensor:
        """Each sequence's reward: D(x) = sigmoid(logit) for reward=prob (SeqGAN's), else minus G's
        loss on its D logit alone (log D(x), nonsaturating)."""
        logits = m.D(tokens)
        if self.sc.reward == "prob":
            return torch.sigmoid(logits)
        return -torch.vmap(lambda logit: self.loss_fn.g(logit.reshape(1)))(logits)

    def reinforce(self, m, b: int) -> Tensor:
        G = m.G
        with torch.no_grad():
            x = G(m.noise(b))
            reward = self.reward(m, x)
            mean_reward = m.global_mean(reward.mean())
            q = reward[:, None].expand(b, G.length)
            if self.sc.rollouts:
                q = self.rollout_rewards(m, x, reward)
            baseline = update_baseline(G.reward_baseline, mean_reward, self.dc.baseline_decay,
                                       m.iteration == self.sc.pretrain_iters)
            if not self.sc.baseline:  # SeqGAN's raw rewards (the buffer still tracks their mean, logged)
                baseline = torch.zeros_like(baseline)
        m.stats.update({"discrete/reward": mean_reward, "discrete/baseline": baseline})
        return reinforce_loss(G.log_probs(x), q, baseline)

    def rollout_rewards(self, m, x: Tensor, reward: Tensor) -> Tensor:
        """SeqGAN's Q [b, L]: for t < L the mean reward of K completions of x_<=t drawn from G
        (fresh uniforms per completion), for t = L the sequence's own reward."""
        G, K = m.G, self.sc.rollouts
        b, L = x.shape
        u = m.draw(b, lambda n, g: torch.rand(n, K, L, generator=g, device=m.device), sub=4)
        q = [self.reward(m, G.continue_from(x[:, :t].repeat_interleave(K, 0), u[:, :, t:].reshape(b * K, L - t)))
             .view(b, K).mean(1) for t in range(1, L)]
        return torch.stack([*q, reward], 1)

    def bgan(self, m, b: int) -> Tensor:
        """Groups of M sequences (G has no latent beyond its sampling noise, so a group is M draws
        of the same model), their weights normalised within the group."""
        G, M = m.G, self.dc.bgan_samples
        with torch.no_grad():
            x = G(m.draw(b, lambda n, g: torch.rand(n, M, G.length, generator=g, device=m.device), sub=4)
                  .reshape(b * M, G.length))
            d = m.D(x).view(b, M)
        m.stats["discrete/D_fake"] = d.mean()
        return bgan_loss(G.log_probs(x).sum(1).view(b, M), d)

    # ----------------------------------------------------------------- `ganscale eval`
    def evaluate(self, m, cfg) -> Optional[dict]:
        """NLL under the oracle of the shards' manifest (ganscale.metrics.oracle) of eval.num_samples
        samples of G (its EMA when there is one)."""
        from ganscale.data import build_datamodule
        from ganscale.metrics.evaluation import build_evaluation

        evaluation = build_evaluation(cfg, build_datamodule(cfg))
        if evaluation is None:
            raise UserError("the run's shards name no oracle to score samples against (manifest `oracle`); "
                            "point data.shards.urls at shards from `ganscale data synth oracle-sequences`")
        evaluation.prepare()
        from ganscale.metrics.callback import SAMPLE_SEED_OFFSET

        return evaluation.evaluate(lambda n, seed=None, y=None, truncation=None:
                                   m.sample(n, seed=cfg.seed + SAMPLE_SEED_OFFSET if seed is None else seed,
                                            batch=cfg.eval.batch_size))
