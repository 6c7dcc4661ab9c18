"""Typed config of discrete-output generators (`model.discrete.*`, used by `game.name=discrete`)."""

from __future__ import annotations

from dataclasses import dataclass, field

ESTIMATORS = ("gumbel", "gumbel_st", "reinforce", "bgan")
SEQUENCE_MODES = ("adversarial", "mle")
SEQUENCE_REWARDS = ("log_d", "prob")


@dataclass
class SequenceConfig:
    """The token-sequence generator of game.name=seqgan (SeqGAN, Yu et al. 2017): an LSTM G, a
    small CNN D; G trained by MLE (teacher forcing) and/or adversarially with `estimator`."""

    mode: str = "adversarial"
    """adversarial: G trains by MLE for `pretrain_iters` iterations, then against D with the
    estimator (SeqGAN); mle: G trains by MLE only for every iteration (the baseline), no D."""
    pretrain_iters: int = 0
    """adversarial mode: iterations of MLE before the adversarial G steps begin."""
    d_warmup_iters: int = 0
    """adversarial mode: D starts this many iterations before the adversarial G steps, on the
    pretrained G's samples (SeqGAN pretrains D before the adversarial phase)."""
    emb: int = 32
    """G's token embedding (the oracle's: 32)."""
    hidden: int = 32
    """G's LSTM hidden size (the oracle's: 32)."""
    d_emb: int = 64
    """D's token embedding (SeqGAN: 64)."""
    d_windows: list[int] = field(default_factory=lambda: [2, 3, 4, 5])
    """D's convolution widths (SeqGAN: 1..10, 15, 20); widths longer than the sequence are dropped."""
    d_channels: int = 32
    """Filters per width (SeqGAN: 100-200)."""
    rollouts: int = 0
    """reinforce: 0 rewards each sequence with D's reward minus the moving-average baseline; K > 0
    gives every token SeqGAN's reward, the mean D reward of K Monte Carlo completions of its prefix
    (the full sequence's own reward at the last token), minus the baseline."""
    reward: str = "log_d"
    """reinforce: a sequence's reward from D's logit. log_d: log D(x) (minus G's nonsaturating
    loss); prob: D(x) = sigmoid(logit) in (0, 1), SeqGAN's (its D's probability of `real`), which
    needs a sigmoid D (loss.name=nonsaturating or minimax)."""
    baseline: bool = True
    """reinforce: subtract the moving-average baseline (model.discrete.baseline_decay) from the
    rewards; false uses the raw rewards, as SeqGAN does (with positive `prob` rewards every sampled
    token's log-probability is pushed up, the more the likelier D finds its completions)."""

    g_every: int = 1
    """adversarial mode: G takes its adversarial step every g_every-th iteration while D steps every
    iteration (SeqGAN trains D for many batches per G step; MLE pretraining still steps G every
    iteration)."""
    adv_lr: float = 0.0
    """adversarial mode: G's learning rate from pretrain_iters on (0 = optim.G.lr throughout).
    MLE pretraining takes large steps (SeqGAN: Adam 0.01); the noisier policy-gradient steps from
    the MLE plateau need smaller ones."""

    def check(self, root) -> list[str]:
        out = []
        if self.mode not in SEQUENCE_MODES:
            out.append(f"mode={self.mode!r} unknown; choose one of: {', '.join(SEQUENCE_MODES)}")
        for name in ("emb", "hidden", "d_emb", "d_channels", "g_every"):
            if getattr(self, name) < 1:
                out.append(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("pretrain_iters", "d_warmup_iters", "rollouts"):
            if getattr(self, name) < 0:
                out.append(f"{name}={getattr(self, name)} must be >= 0")
        if self.adv_lr < 0:
            out.append(f"adv_lr={self.adv_lr} must be >= 0 (0 = optim.G.lr throughout)")
        if self.reward not in SEQUENCE_REWARDS:
            out.append(f"reward={self.reward!r} unknown; choose one of: {', '.join(SEQUENCE_REWARDS)}")
        if not self.d_windows or min(self.d_windows) < 1:
            out.append(f"d_windows={self.d_windows}: give widths >= 1")
        return out


@dataclass
class DiscreteConfig:
    """How G's discrete samples pass a gradient from D back to G: one switch, `estimator`."""

    estimator: str = "gumbel_st"
    """gumbel: D sees the relaxed Gumbel-softmax (concrete) sample at temperature tau; gumbel_st:
    D sees the hard sample, the gradient is the relaxed one's (straight-through); reinforce: score
    function with reward log D(x) minus a moving-average baseline; bgan: boundary-seeking GAN
    (Hjelm et al. 2018), log-likelihood of M samples per z weighted by their normalised D ratios."""
    tau_start: float = 1.0
    """Gumbel-softmax temperature at iteration 0."""
    tau_end: float = 0.3
    """Temperature reached after `tau_anneal_iters` (geometric interpolation), kept afterwards."""
    tau_anneal_iters: int = 2000
    """Iterations over which tau goes from tau_start to tau_end (0 = tau_end from the start)."""
    baseline_decay: float = 0.95
    """REINFORCE baseline b <- decay * b + (1 - decay) * mean reward of the global batch."""
    bgan_samples: int = 8
    """BGAN: M samples drawn per latent z; their importance weights are normalised over the M."""
    threshold: float = 0.5
    """Real images (pixel values in [0, 1]) become binary: pixel > threshold is 1, else 0."""
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    """Token sequences (game.name=seqgan): the LSTM G, the CNN D, MLE pretraining or the MLE baseline."""

    def check(self, root) -> list[str]:
        out = []
        if self.estimator not in ESTIMATORS:
            out.append(f"estimator={self.estimator!r} unknown; choose one of: {', '.join(ESTIMATORS)}")
        if self.tau_start <= 0 or self.tau_end <= 0:
            out.append(f"tau_start={self.tau_start} and tau_end={self.tau_end} must be > 0")
        if self.tau_anneal_iters < 0:
            out.append(f"tau_anneal_iters={self.tau_anneal_iters} must be >= 0")
        if not 0 <= self.baseline_decay < 1:
            out.append(f"baseline_decay={self.baseline_decay} must be in [0, 1)")
        if self.bgan_samples < 2:
            out.append(f"bgan_samples={self.bgan_samples} must be >= 2 (weights are normalised over them)")
        if not 0 < self.threshold < 1:
            out.append(f"threshold={self.threshold} must be in (0, 1)")
        return out
