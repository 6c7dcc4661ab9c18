"""Typed configs of the two-player update: loss, regularizers, optimizers, EMA, unrolling, trainer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ganscale.utils.intervals import due

if TYPE_CHECKING:
    from ganscale.config.schema import RunConfig

PLAYERS = ("G", "D")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "linear", "cosine")
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed")


@dataclass
class LossConfig:
    name: str = "nonsaturating"
    """GAN loss: minimax, nonsaturating, hinge, wasserstein, least_squares."""

    def check(self, root: "RunConfig") -> list[str]:
        from ganscale.registry import LOSSES

        p = LOSSES.problem("name", self.name)
        return [p] if p else []


@dataclass
class RegConfig:
    gp_weight: float = 0.0
    """WGAN-GP weight lambda on (||grad D(x_hat)|| - gp_center)^2 at real/fake interpolates; 0 = off."""
    gp_center: float = 1.0
    """Target gradient norm of the gradient penalty (1 in WGAN-GP, 0 = zero-centred)."""
    r1_gamma: float = 0.0
    """R1 weight gamma: gamma/2 * ||grad D(x_real)||^2; 0 = off."""
    r1_interval: int = 1
    """Lazy R1: apply every this many iterations, scaled by the interval (StyleGAN2 correction)."""
    spectral_norm: list[str] = field(default_factory=list)
    """Players whose linear/conv layers get spectral norm (torch parametrization): [], [D], [G, D]."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.gp_weight < 0 or self.r1_gamma < 0:
            out.append("gp_weight and r1_gamma must be >= 0")
        if self.r1_interval < 1:
            out.append(f"r1_interval={self.r1_interval} must be >= 1")
        bad = [p for p in self.spectral_norm if p not in PLAYERS]
        if bad:
            out.append(f"spectral_norm={self.spectral_norm}: {bad} unknown; list players from: G, D")
        return out


@dataclass
class OptimizerConfig:
    name: str = "adam"
    """adam, adamw or sgd."""
    lr: float = 2e-4
    """Learning rate."""
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    """Adam betas (beta1, beta2)."""
    eps: float = 1e-8
    """Adam epsilon."""
    weight_decay: float = 0.0
    """Weight decay (decoupled for adamw)."""
    momentum: float = 0.0
    """SGD momentum."""
    schedule: str = "constant"
    """Learning-rate schedule: constant, or linear / cosine decay from lr (at decay_start) to
    lr * final_scale (at trainer.max_iters). A pure function of the iteration (ganscale.train.optim)."""
    decay_start: float = 0.0
    """Fraction of trainer.max_iters at which the decay begins (0 = from the first iteration)."""
    final_scale: float = 0.0
    """The learning rate at trainer.max_iters, as a fraction of lr."""
    clip_norm: float = 0.0
    """Clip the player's gradients to this global L2 norm before its step (after the cross-rank
    average, so every rank clips alike; DeepSpeed engines get it as `gradient_clipping`); 0 = off.
    SeqGAN clips its generator at 5. The logged grad_norm/<player> is the norm before clipping."""
    fused: Optional[bool] = None
    """Adam/AdamW's fused CUDA kernel (one kernel for the whole update instead of several per
    tensor). null = auto: fused when the parameters live on a GPU; true = require it (a CPU run is
    refused); false = the default per-tensor implementation. Ignored by sgd."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.name not in OPTIMIZERS:
            out.append(f"name={self.name!r} unknown; choose one of: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            out.append(f"schedule={self.schedule!r} unknown; choose one of: {', '.join(SCHEDULES)}")
        if not 0 <= self.decay_start < 1:
            out.append(f"decay_start={self.decay_start} must be a fraction of trainer.max_iters in [0, 1)")
        if not 0 <= self.final_scale <= 1:
            out.append(f"final_scale={self.final_scale} must be in [0, 1] (a fraction of lr)")
        if self.lr <= 0:
            out.append(f"lr={self.lr} must be > 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            out.append(f"betas={self.betas} must be two numbers in [0, 1)")
        if self.clip_norm < 0:
            out.append(f"clip_norm={self.clip_norm} must be >= 0 (0 = no clipping)")
        if self.fused and root.trainer.accelerator == "cpu":
            out.append("fused=true needs a GPU (the fused Adam kernel runs on CUDA); on CPU leave it "
                       "null (auto) or set it to false")
        return out


@dataclass
class OptimConfig:
    G: OptimizerConfig = field(default_factory=OptimizerConfig)
    """Generator optimizer."""
    D: OptimizerConfig = field(default_factory=OptimizerConfig)
    """Discriminator optimizer."""


@dataclass
class EMAConfig:
    enabled: bool = True
    """Keep G_ema, an exponential moving average of G's weights; sampling uses it."""
    decay: float = 0.999
    """G_ema <- decay * G_ema + (1 - decay) * G after every iteration."""
    start_iter: int = 0
    """Before this iteration G_ema copies G (no averaging of the early, poor weights)."""

    def check(self, root: "RunConfig") -> list[str]:
        out = [] if 0 <= self.decay < 1 else [f"decay={self.decay} must be in [0, 1)"]
        if self.enabled and self.start_iter >= root.trainer.max_iters:
            out.append(f"start_iter={self.start_iter} >= trainer.max_iters={root.trainer.max_iters}: G_ema would "
                       "only ever copy G; lower start_iter or set gan.ema.enabled=false")
        return out


@dataclass
class GANConfig:
    n_disc: int = 1
    """D steps per G step; each D step draws fresh real data and fresh noise."""
    ema: EMAConfig = field(default_factory=EMAConfig)
    """EMA of G's weights."""

    def check(self, root: "RunConfig") -> list[str]:
        return [] if self.n_disc >= 1 else [f"n_disc={self.n_disc} must be >= 1"]


@dataclass
class UnrollConfig:
    """Unrolled D steps in G's update (`unroll.*`)."""

    steps: int = 0
    """k, the number of look-ahead D updates G's loss sees; 0 = off (the plain G step)."""
    second_order: bool = True
    """Differentiate G's loss through the k updates (Metz et al.); false = the cheap first-order
    variant (the k-step D is a constant for G's gradient)."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.steps < 0:
            out.append(f"steps={self.steps} must be >= 0 (0 = no unrolling)")
        if self.steps > 0 and root.optim.D.clip_norm > 0:
            out.append(f"steps={self.steps} with optim.D.clip_norm={root.optim.D.clip_norm}: the look-ahead replays "
                       "D's optimizer rule without clipping, so G would unroll another D than the one that "
                       "trains; set optim.D.clip_norm=0 or unroll.steps=0")
        return out


@dataclass
class TrainerConfig:
    max_iters: int = 3000
    """Training length in ganscale iterations (one iteration = n_disc D steps + one G step)."""
    accelerator: str = "cpu"
    """cpu, gpu or auto (Lightning accelerator)."""
    devices: int = 1
    """Processes (GPUs) per node."""
    num_nodes: int = 1
    """Nodes."""
    precision: str = "32"
    """32, bf16-mixed or 16-mixed."""
    log_every: int = 50
    """Log losses every this many iterations."""
    plot_every: int = 1000
    """Save a sample plot every this many iterations (0 = only at the end)."""
    eval_every: int = 1000
    """Compute metrics every this many iterations (0 = only at the end)."""
    ckpt_every: int = 1000
    """Write a checkpoint every this many iterations (0 = only at the end)."""
    iters_per_step: int = 1
    """ganscale iterations per Lightning training step (at most). Lightning's per-batch loop
    (fetch, device transfer, callback fan-out, progress tracking) costs about 0.5 ms per step on a
    CPU, 5-7 % of a small model's iteration (the toy jobs); K > 1 pays it once per K iterations.
    A step also ends where an op acts (log_every, plot_every, eval_every, ckpt_every, max_iters), so
    logs, evaluations and checkpoints come at the same iterations, and the results are the same for
    every K: each iteration still gets its own batch and seeded draws. What changes: a preemption
    signal is answered at the end of the step, and the non-finite guard rolls back at the end of
    the step in which its streak completed."""

    progress_bar: bool = True
    """Show a progress bar (iterations, it/s, main losses)."""
    deterministic: bool = True
    """Use deterministic algorithms (same config + seed -> same metrics on CPU)."""
    compile: bool = False
    """torch.compile G and D in place (nn.Module.compile: same parameters, same checkpoint keys).
    The first iterations pay the compilation (seconds to minutes); it pays off on long GPU runs."""
    channels_last: bool = False
    """Keep image nets' 4D weights (and so their activations) in channels-last memory format, the
    layout tensor cores want for convolutions under mixed precision. No effect on MLPs."""
    tf32: bool = True
    """Let CUDA fp32 matmuls and cuDNN convolutions use TF32 tensor cores (Ampere and newer):
    several times faster, with a 10-bit mantissa in the products. false = exact fp32. No effect on CPU."""
    num_threads: int = 0
    """CPU threads per process for torch's intra-op work (torch.set_num_threads). 0 = auto: 1 for
    the 2D toy data, whose tiny MLPs run fastest single-threaded (and collapse to a fraction of
    that when extra threads fight other processes for a shared CPU), torch's default otherwise."""

    def step_ends(self, done: int) -> bool:
        """Whether a training step ends once `done` iterations are done: every iters_per_step, and
        where an op is due (the cadences above, max_iters)."""
        cadences = (self.iters_per_step, self.log_every, self.plot_every, self.eval_every, self.ckpt_every)
        return any(due(done, every, self.max_iters) for every in cadences)

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.max_iters < 1:
            out.append(f"max_iters={self.max_iters} must be >= 1")
        if self.accelerator not in ("cpu", "gpu", "cuda", "auto"):
            out.append(f"accelerator={self.accelerator!r} unknown; choose one of: cpu, gpu, auto")
        if self.devices < 1 or self.num_nodes < 1:
            out.append("devices and num_nodes must be >= 1")
        if self.precision not in PRECISIONS:
            out.append(f"precision={self.precision!r} unknown; choose one of: {', '.join(PRECISIONS)}")
        elif self.precision == "16-mixed" and self.accelerator == "cpu":
            out.append("precision=16-mixed needs a GPU (float16 autocast with loss scaling); "
                       "on CPU use precision=bf16-mixed or 32")
        if self.num_threads < 0:
            out.append(f"num_threads={self.num_threads} must be >= 0 (0 = auto)")
        for k in ("log_every", "plot_every", "eval_every", "ckpt_every"):
            if getattr(self, k) < 0:
                out.append(f"{k}={getattr(self, k)} must be >= 0")
        if self.iters_per_step < 1:
            out.append(f"iters_per_step={self.iters_per_step} must be >= 1")
        return out


@dataclass
class RunDirConfig:
    root: str = "runs"
    """Folder that holds run directories."""
    name: Optional[str] = None
    """Run directory name under root; default: <config name>-<UTC timestamp>."""
    resume: str = "auto"
    """auto: continue from the newest complete checkpoint in the run directory if there is one; never: refuse to reuse a directory that has checkpoints."""

    def check(self, root: "RunConfig") -> list[str]:
        return [] if self.resume in ("auto", "never") else [f"resume={self.resume!r}; choose auto or never"]
