"""Non-finite guard: roll back after K consecutive skipped iterations, stop after R rollbacks.

GANModule._player_step already skips, on every rank at once, a step whose loss or gradient is
not finite somewhere. Skipping is right for a stray bad batch; a run that keeps producing NaNs
has diverged, and more skipping only wastes the allocation. So, with `guard.*`:

* an iteration in which any player step was skipped extends the streak; any clean iteration
  ends it;
* after `max_consecutive_skips` (K) such iterations, every rank loads the newest complete
  checkpoint written before the streak began (G, D, G_ema, optimizers, schedulers, scaler),
  optionally multiplies the learning rates by `lr_factor`, logs it and goes on. The iteration
  counter is *not* rewound: data and noise continue forward, so the batches that led into the
  divergence are skipped rather than replayed (what large-scale runs do after a loss spike);
* the `max_rollbacks`+1-th streak stops the run with `TrainingDiverged`.

All decisions derive from the skip counts, which every rank agrees on, so the ranks roll back
together without extra communication.

`guard.debug_nan_d_loss_at` (debugging only) poisons D's loss at chosen iterations.
"""

from __future__ import annotations

import dataclasses
import json
import os

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from ganscale.errors import UserError
from ganscale.ops.checkpoint import store


class TrainingDiverged(UserError):
    """Non-finite steps persisted through every allowed rollback."""

    exit_code = 3


def with_nan_d_loss(loss, is_poisoned):
    """A copy of the GAN loss whose D-on-real term is NaN while `is_poisoned()` (debugging)."""
    base = loss.d_real

    def d_real(r):
        out = base(r)
        return out * float("nan") if is_poisoned() else out

    return dataclasses.replace(loss, d_real=d_real)


def load_training_state(trainer, path: str) -> dict:
    """Load weights, optimizers, schedulers and the loss scaler of `path` into the running
    trainer, through the strategy (which knows sharded/engine formats). Every rank calls it."""
    ckpt = trainer.strategy.load_checkpoint(path)
    trainer.strategy.load_model_state_dict(ckpt, strict=True)
    trainer.strategy.load_optimizer_state_dict(ckpt)
    for config, state in zip(trainer.lr_scheduler_configs, ckpt.get("lr_schedulers", [])):
        config.scheduler.load_state_dict(state)
    precision = trainer.precision_plugin
    key = type(precision).__qualname__
    if key in ckpt:
        precision.load_state_dict(ckpt[key])
    return ckpt


class NonFiniteGuard(L.Callback):
    """Counts skipped iterations, rolls back, gives up. Runs before the checkpoint callback so a
    checkpoint due at the same iteration stores the rolled-back state."""

    def __init__(self, cfg, run_dir: str, checkpointer=None):
        self.cfg, self.run_dir = cfg, run_dir
        self.ckpt_dir = os.path.join(run_dir, "checkpoints")
        self.checkpointer = checkpointer
        self.num_rollbacks = 0
        self.lr_scale = 1.0
        self.streak = 0
        self._streak_start = 0

    # state kept in checkpoints: a resumed run keeps counting rollbacks and its lowered lrs
    def state_dict(self) -> dict:
        return {"num_rollbacks": self.num_rollbacks, "lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict) -> None:
        self.num_rollbacks = int(state.get("num_rollbacks", 0))
        self.lr_scale = float(state.get("lr_scale", 1.0))

    def setup(self, trainer, pl_module, stage: str) -> None:
        poisoned = set(self.cfg.guard.debug_nan_d_loss_at)
        if poisoned:
            game = pl_module.game
            if not hasattr(game, "loss_fn"):
                raise UserError(f"guard.debug_nan_d_loss_at poisons the GAN's D loss; game.name={game.name} has none")
            game.loss_fn = with_nan_d_loss(game.loss_fn, lambda: pl_module.iteration in poisoned)

    def on_train_start(self, trainer, pl_module) -> None:
        # the module recomputes every learning rate each iteration (schedule x lr_scale), so a
        # resumed run gets the lowered rates from the scale restored with this callback's state
        pl_module.lr_scale = self.lr_scale
        pl_module.pop_iteration_skips()  # starts the module's per-iteration record

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # one flag per iteration of the step (trainer.iters_per_step of them, the last step of a
        # run maybe fewer); a streak that completes inside the step rolls back at its end
        flags = pl_module.pop_iteration_skips()
        k = self.cfg.guard.max_consecutive_skips
        for j, skipped in enumerate(flags):
            if skipped:
                if self.streak == 0:
                    done = pl_module.iteration - len(flags) + j  # iterations done before the streak
                    self._streak_start = done
                    if self.checkpointer is not None:
                        self.checkpointer.pinned = store.latest_checkpoint(self.ckpt_dir, done)
                self.streak += 1
            else:
                self._end_streak()
            if k and self.streak >= k:
                self.rollback(trainer, pl_module)
                break

    def _end_streak(self) -> None:
        self.streak = 0
        if self.checkpointer is not None:
            self.checkpointer.pinned = None

    def rollback(self, trainer, pl_module) -> None:
        g = self.cfg.guard
        it = pl_module.iteration
        if self.num_rollbacks >= g.max_rollbacks:
            raise TrainingDiverged(
                f"training diverged: {self.streak} consecutive iterations with non-finite losses or gradients "
                f"at iteration {it}, after {self.num_rollbacks} rollback(s) (guard.max_rollbacks={g.max_rollbacks}). "
                f"Lower the learning rates (optim.G.lr, optim.D.lr), set guard.lr_factor<1, add a regularizer "
                f"(reg.r1_gamma, reg.gp_weight), or inspect {self.ckpt_dir}")
        target = store.latest_checkpoint(self.ckpt_dir, self._streak_start)
        if target is None:
            raise TrainingDiverged(
                f"training diverged: {self.streak} consecutive iterations with non-finite losses or gradients "
                f"at iteration {it}, and no complete checkpoint from before iteration {self._streak_start + 1} "
                f"to roll back to. Write checkpoints more often (trainer.ckpt_every) or lower the learning rates")
        ckpt = load_training_state(trainer, target)
        back_to = int(ckpt.get("ganscale", {}).get("iteration", store.iteration_of(target)))
        self.num_rollbacks += 1
        if g.lr_factor != 1.0:
            self.lr_scale *= g.lr_factor
            pl_module.lr_scale = self.lr_scale
        self._report(trainer, it, back_to, target)
        self._end_streak()

    @rank_zero_only
    def _report(self, trainer, it: int, back_to: int, target: str) -> None:
        event = {"iter": it, "event": "rollback", "to_checkpoint": os.path.basename(target),
                 "to_iteration": back_to, "num_rollbacks": self.num_rollbacks, "lr_scale": self.lr_scale}
        print(f"ganscale: {self.streak} consecutive non-finite iterations at iteration {it}; rolled back to "
              f"{os.path.basename(target)} (weights of iteration {back_to}), rollback "
              f"{self.num_rollbacks}/{self.cfg.guard.max_rollbacks}, lr scale {self.lr_scale:g}", flush=True)
        with open(os.path.join(self.run_dir, "events.jsonl"), "a") as f:
            f.write(json.dumps(event) + "\n")
        metrics = {"guard/rollbacks": self.num_rollbacks, "guard/rollback_to_iter": back_to,
                   "guard/lr_scale": self.lr_scale}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=it)
