"""The two-player LightningModule: the GAN update as named phases, under manual optimization.

One `training_step` is one ganscale iteration:

    D_main  x n_disc   each on its own chunk of real data and fresh noise
    D_reg              lazy R1 every reg.r1_interval iterations (interval-corrected)
    G_main             G's adversarial loss through a frozen D, or through D after unroll.steps
                       differentiable look-ahead updates (ganscale.train.unroll); plus feature
                       matching when model.remedies.feature_matching.weight > 0
    G_reg              G-side penalties registered by the net family (none for MLPs)
    EMA                G_ema <- lerp(G_ema, G, 1 - decay)

Each phase switches `requires_grad` so that only its player gets gradients. Every backward goes
through `_player_step`, the one place where the finite-loss guard, the strategy's gradient
synchronisation and the optimizer step happen.

Noise is drawn for the *global* batch from a generator seeded by (seed, iteration, phase) and
each rank takes its slice: a resumed run draws the same noise as an uninterrupted one, and N
ranks with per-rank batch b draw exactly the noise one process with batch N*b draws.
"""

from __future__ import annotations

from typing import Optional, Sequence

import lightning as L
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ganscale.config.load import to_dict
from ganscale.distributed.players import player_step
from ganscale.distributed.precision import cast_like
from ganscale.losses import get_loss
from ganscale.nets import build_nets
from ganscale.nets.remedies import feature_matching_loss
from ganscale.regularizers import apply_spectral_norm, gradient_penalty, r1_penalty
from ganscale.train.optim import build_optimizer, lr_at, set_lr
from ganscale.train.unroll import DLookahead, FunctionalD

PHASE_IDS = {"D_main": 0, "D_reg": 1, "G_main": 2, "G_reg": 3}


class GANModule(L.LightningModule):
    def __init__(self, cfg, info):
        super().__init__()
        self.cfg = cfg
        self.info = info
        self.automatic_optimization = False
        G, D = build_nets(cfg.model, info)
        if "G" in cfg.reg.spectral_norm:
            apply_spectral_norm(G)
        if "D" in cfg.reg.spectral_norm:
            apply_spectral_norm(D)
        self.G, self.D = G, D
        self.G_ema: Optional[AveragedModel] = None
        if cfg.gan.ema.enabled:
            self.G_ema = AveragedModel(
                G, multi_avg_fn=get_ema_multi_avg_fn(cfg.gan.ema.decay), use_buffers=True
            )
            self.G_ema.requires_grad_(False)
        self.loss_fn = get_loss(cfg.loss.name)
        self.iteration = 0
        """ganscale's iteration counter (n_disc D steps + 1 G step); saved in checkpoints."""
        self.lr_scale = 1.0
        """Multiplier on every learning rate, lowered by the non-finite guard's rollbacks
        (guard.lr_factor; the guard restores it on resume)."""
        self.num_skipped = {"D": 0, "G": 0}
        """Steps skipped because a loss or gradient was not finite on some rank."""
        self.stats: dict[str, Tensor] = {}
        self.reals: list[tuple[Tensor, Optional[Tensor]]] = []
        """This iteration's (real, y) chunks, one per D step; the G phase's look-ahead and
        feature matching use them."""

    # ----------------------------------------------------------------- helpers
    @property
    def sampler(self):
        """The generator used for sampling: G_ema when it exists."""
        return self.G_ema.module if self.G_ema is not None else self.G

    @property
    def _rank(self) -> int:
        return self.trainer.global_rank if self._trainer is not None else 0

    @property
    def _world(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    def _phase_generator(self, phase: str, sub: int = 0) -> torch.Generator:
        seed = (self.cfg.seed * 1_000_003 + self.iteration) * 64 + PHASE_IDS[phase] * 16 + sub
        return torch.Generator(device=self.device).manual_seed(seed % (2**63))

    def _rank_slice(self, t: Tensor, per_rank: int) -> Tensor:
        return t[self._rank * per_rank:(self._rank + 1) * per_rank]

    def noise(self, per_rank: int, phase: str, sub: int = 0, generator: Optional[torch.Generator] = None) -> Tensor:
        """This rank's slice of the global batch of latents for (iteration, phase, sub), or the
        next draw of `generator` when one is given."""
        g = generator or self._phase_generator(phase, sub)
        z = self.G.sample_z(per_rank * self._world, generator=g, device=self.device)
        return self._rank_slice(z, per_rank)

    def fake_labels(self, per_rank: int, phase: str, sub: int = 0,
                    generator: Optional[torch.Generator] = None) -> Optional[Tensor]:
        if not self.info.num_classes:
            return None
        g = generator or self._phase_generator(phase, sub + 8)
        y = torch.randint(self.info.num_classes, (per_rank * self._world,), generator=g, device=self.device)
        return self._rank_slice(y, per_rank)

    def _train(self, player: Optional[str]) -> None:
        """requires_grad on for `player` only, so no phase computes gradients it will not use."""
        self.G.requires_grad_(player == "G")
        self.D.requires_grad_(player == "D")

    def _player_step(self, name: str, loss: Tensor) -> bool:
        """Backward, synchronise, guard, step (ganscale.distributed.players, the same for one process,
        DDP and DeepSpeed). Returns False when the step was skipped on every rank."""
        return player_step(self, name, loss)

    # ----------------------------------------------------------------- phases
    def d_logits(self, x: Tensor, y: Optional[Tensor], **kwargs) -> Tensor:
        return self.D(x, y, **kwargs)

    def d_main_loss(self, d, real: Tensor, y_real: Optional[Tensor], fake: Tensor, y_fake: Optional[Tensor],
                    gp_generator: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        """D's loss in the D_main phase, for the D callable `d` (self.d_logits, or D inside an
        unrolled look-ahead step, which minimises exactly this loss), and its detached stats."""
        r, f = d(real, y_real), d(fake, y_fake)
        loss_real, loss_fake = self.loss_fn.d_real(r), self.loss_fn.d_fake(f)
        loss = loss_real + loss_fake
        stats = {}
        if self.cfg.reg.gp_weight > 0:
            b = real.shape[0]
            eps = torch.rand(b * self._world, *([1] * (real.dim() - 1)), generator=gp_generator, device=self.device)
            gp = gradient_penalty(lambda t: d(t, y_real), real, fake, self.cfg.reg.gp_center, self._rank_slice(eps, b))
            loss = loss + self.cfg.reg.gp_weight * gp
            stats["reg/D/gp"] = gp.detach()
        stats.update({
            "loss/D/real": loss_real.detach(), "loss/D/fake": loss_fake.detach(), "loss/D": loss.detach(),
            "D/real": r.detach().mean(), "D/fake": f.detach().mean(),
        })
        return loss, stats

    def phase_D_main(self, real: Tensor, y_real: Optional[Tensor], sub: int) -> None:
        self._train("D")
        b = real.shape[0]
        with torch.no_grad():
            y_fake = self.fake_labels(b, "D_main", sub)
            fake = self.G(self.noise(b, "D_main", sub), y_fake)
        loss, stats = self.d_main_loss(self.d_logits, real, y_real, fake, y_fake,
                                       self._phase_generator("D_main", sub + 4))
        self._player_step("D", loss)
        self.stats.update(stats)

    def phase_D_reg(self, real: Tensor, y_real: Optional[Tensor]) -> None:
        self._train("D")
        r1 = r1_penalty(lambda t: self.d_logits(t, y_real), real)
        loss = 0.5 * self.cfg.reg.r1_gamma * self.cfg.reg.r1_interval * r1
        self._player_step("D", loss)
        self.stats["reg/D/r1"] = r1.detach()

    def unrolled_D(self, reals: Sequence[tuple[Tensor, Optional[Tensor]]]) -> FunctionalD:
        """D after unroll.steps look-ahead updates from its current state (ganscale.train.unroll).
        Look-ahead step j minimises d_main_loss on real chunk j mod n_disc of this iteration and on
        fresh fakes of G (drawn from the G_main phase's generators 1/5/9), kept in the graph for
        second order. The strategy may define `unroll_grad_sync` (a differentiable cross-rank mean)."""
        if not reals:
            raise ValueError("the unrolled G loss needs this iteration's real chunks in self.reals")
        b = reals[0][0].shape[0]
        g_z, g_y, g_eps = (self._phase_generator("G_main", s) for s in (1, 9, 5))

        def step_loss(j: int, d: FunctionalD, keep_graph: bool) -> Tensor:
            real, y_real = reals[j % len(reals)]
            z, y_fake = self.noise(b, "G_main", generator=g_z), self.fake_labels(b, "G_main", generator=g_y)
            with torch.set_grad_enabled(keep_graph):  # first order needs no graph to G here
                fake = self.G(z, y_fake)
            loss, stats = self.d_main_loss(d, real, y_real, fake, y_fake, g_eps)
            self.stats["unroll/loss/D"] = stats["loss/D"]
            return loss

        sync = getattr(self.trainer.strategy, "unroll_grad_sync", None)
        # under ZeRO, D's optimizer state is partitioned: the strategy then gives a full view of it
        view = getattr(self.trainer.strategy, "unroll_optimizer", None)
        lookahead = DLookahead(self.D, view("D") if view else self._optimizers["D"], self.cfg.unroll.steps,
                               self.cfg.unroll.second_order, grad_sync=sync)
        return lookahead.run(step_loss)

    def g_loss(self, b: int) -> Tensor:
        reals = self.reals
        y_fake = self.fake_labels(b, "G_main")
        fake = self.G(self.noise(b, "G_main"), y_fake)
        d = self.unrolled_D(reals) if self.cfg.unroll.steps > 0 else self.d_logits
        fm = self.cfg.model.remedies.feature_matching
        if fm.weight == 0:
            return self.loss_fn.g(d(fake, y_fake))
        logits, features = d(fake, y_fake, return_features=True)
        real, y_real = reals[-1]
        _, real_features = d(real, y_real, return_features=True)
        loss_fm = feature_matching_loss(real_features, features)
        self.stats["loss/G/feature_matching"] = loss_fm.detach()
        loss = fm.weight * loss_fm
        if fm.adversarial_weight > 0:
            loss = loss + fm.adversarial_weight * self.loss_fn.g(logits)
        return loss

    def phase_G_main(self, b: int) -> None:
        self._train("G")
        loss = self.g_loss(b)
        self.stats["loss/G"] = loss.detach()
        penalty = self.g_penalty()
        if penalty is not None:
            # in the same step: a separate Adam step would rescale a small penalty (BigGAN's
            # beta = 1e-4) to a full learning-rate-sized update
            loss = loss + penalty
            self.stats["reg/G/net"] = penalty.detach()
        self._player_step("G", loss)

    def g_penalty(self) -> Optional[Tensor]:
        """Every-step penalty of the net family, added to G's loss (BigGAN's orthogonal
        regularization: `G.regularization()`), or None."""
        fn = getattr(self.G, "regularization", None)
        return fn() if callable(fn) else None

    def g_reg_loss(self) -> Optional[Tensor]:
        """Lazy G-side penalty with its own step (`G.lazy_regularization()`, e.g. path length), or None."""
        fn = getattr(self.G, "lazy_regularization", None)
        return fn() if callable(fn) else None

    def phase_G_reg(self) -> None:
        self._train("G")
        loss = self.g_reg_loss()
        if loss is not None:
            self._player_step("G", loss)
            self.stats["reg/G"] = loss.detach()

    def update_ema(self) -> None:
        if self.G_ema is None:
            return
        if self.iteration < self.cfg.gan.ema.start_iter:
            self.G_ema.n_averaged.zero_()  # the next update copies G instead of averaging
        self.G_ema.update_parameters(cast_like(self.G, self.G_ema.module))

    # ----------------------------------------------------------------- Lightning hooks
    def configure_optimizers(self):
        return [build_optimizer(self.G.parameters(), self.cfg.optim.G),
                build_optimizer(self.D.parameters(), self.cfg.optim.D)]

    def apply_lr_schedule(self) -> None:
        """Set each player's learning rate for this iteration: its schedule (ganscale.train.optim.lr_at,
        constant included) times the guard's lr_scale. The one place learning rates are set."""
        for name, opt in self._optimizers.items():
            set_lr(opt, lr_at(getattr(self.cfg.optim, name), self.iteration, self.cfg.trainer.max_iters) * self.lr_scale)

    @property
    def _optimizers(self) -> dict:
        opt_G, opt_D = self.optimizers()
        return {"G": opt_G, "D": opt_D}

    def training_step(self, batch: dict, batch_idx: int) -> None:
        x, y = batch["x"], batch.get("y")
        self.apply_lr_schedule()
        n_disc = self.cfg.gan.n_disc
        b = x.shape[0] // n_disc  # per-rank batch
        self.reals = [(x[i * b:(i + 1) * b], None if y is None else y[i * b:(i + 1) * b]) for i in range(n_disc)]
        for i, (real, y_real) in enumerate(self.reals):
            self.phase_D_main(real, y_real, i)
        if self.cfg.reg.r1_gamma > 0 and self.iteration % self.cfg.reg.r1_interval == 0:
            self.phase_D_reg(*self.reals[-1])
        self.phase_G_main(b)
        self.phase_G_reg()
        self._train(None)
        sync = getattr(self.trainer.strategy, "sync_replica_buffers", None)
        if sync is not None:
            sync()  # BatchNorm statistics equal on every rank before G_ema averages them
        self.update_ema()
        self.iteration += 1

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ganscale"] = {
            "iteration": self.iteration,
            "num_skipped": dict(self.num_skipped),
            "config": to_dict(self.cfg),
            "info": {"kind": self.info.kind, "shape": list(self.info.shape), "num_classes": self.info.num_classes},
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("ganscale", {})
        self.iteration = int(state.get("iteration", 0))
        self.num_skipped.update(state.get("num_skipped", {}))

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, y: Optional[Tensor] = None, truncation: Optional[float] = None,
               batch: int = 1024) -> Tensor:
        """n samples from G_ema (or G), on CPU; the same seed gives the same samples."""
        G = self.sampler
        was_training = G.training
        G.eval()
        g = torch.Generator(device=self.device).manual_seed(seed)
        out = []
        for start in range(0, n, batch):
            m = min(batch, n - start)
            z = G.sample_z(m, generator=g, device=self.device, truncation=truncation)
            yy = None
            if self.info.num_classes:
                yy = y[start:start + m].to(self.device) if y is not None else \
                    torch.randint(self.info.num_classes, (m,), generator=g, device=self.device)
            out.append(G(z, yy).float().cpu())
        G.train(was_training)
        return torch.cat(out) if out else torch.empty(0, *self.info.shape)

