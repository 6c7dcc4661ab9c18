"""Typed config of discrete-output generators (`model.discrete.*`, used by `game.name=discrete`)."""

from __future__ import annotations

from dataclasses import dataclass

ESTIMATORS = ("gumbel", "gumbel_st", "reinforce", "bgan")


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
