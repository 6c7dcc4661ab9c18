"""Full-state checkpoints at ganscale iterations.

A checkpoint holds everything needed to continue exactly:

    state_dict                G, D and G_ema (module state, incl. G_ema's n_averaged)
    optimizer_states          both players' optimizers (Lightning)
    lr_schedulers             schedulers, if any (Lightning)
    <PrecisionPlugin>         the loss scaler of 16-mixed (Lightning)
    datamodule state          the data stream position (GANDataModule.state_dict)
    ganscale                  iteration counter, skipped-step counts, config (GANModule)
    ganscale_ops.rng          Python/NumPy/torch/CUDA generator states of every rank
    ganscale_ops.metrics      the evaluation at this iteration (for best-checkpoint selection)
    callbacks                 callback states (e.g. the guard's rollback count and lr scale)

Strategies that shard the training state (DeepSpeed's engines write a folder from every rank)
plug in through Lightning's own `Strategy.save_checkpoint`/`load_checkpoint`: every rank calls
`trainer.save_checkpoint(path)`, and after a barrier rank 0 marks `path` complete if the
strategy wrote it past the CheckpointIO plugin.
"""

from __future__ import annotations

import os
import warnings
from typing import Optional

import lightning as L

from ganscale.ops.checkpoint import rng, store
from ganscale.ops.checkpoint.io import checkpoint_meta
from ganscale.utils.intervals import due


class FullStateCheckpoint(L.Callback):
    """Checkpoint every `trainer.ckpt_every` iterations and at `max_iters`; `save()` on demand
    (preemption). Keeps `checkpoint.keep_last` plus the best by `checkpoint.best_metric`."""

    def __init__(self, cfg, ckpt_dir: str):
        self.cfg, self.ckpt_dir = cfg, ckpt_dir
        self.last_path: Optional[str] = None
        self._last_iteration = -1
        self.pinned: Optional[str] = None
        """A checkpoint that pruning must keep (the guard pins its rollback target)."""
        self._pending_rng: Optional[dict] = None

    # ----------------------------------------------------------------- saving
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # should_stop: a callback before this one ended the run early (a game's own stopping rule,
        # e.g. the cryptography game's target): its last iteration is the run's final checkpoint
        if trainer.should_stop or due(pl_module.iteration, self.cfg.trainer.ckpt_every, self.cfg.trainer.max_iters):
            self.save(trainer, pl_module)

    def save(self, trainer, pl_module) -> str:
        """Write a complete checkpoint of the current iteration (collective: every rank calls it)."""
        it = pl_module.iteration
        path = store.checkpoint_path(self.ckpt_dir, it)
        if it == self._last_iteration:
            return path
        trainer.save_checkpoint(path, weights_only=False)  # every rank builds it; the strategy decides who writes
        trainer.strategy.barrier("ganscale_checkpoint")
        if trainer.is_global_zero:
            if not store.is_complete(path):  # written by the strategy itself, not by CheckpointIO
                store.commit(path, {"iteration": it, "metrics": self._metrics_at(trainer, it)})
            self._after_commit(trainer, path)
        self._last_iteration, self.last_path = it, path
        return path

    def _after_commit(self, trainer, path: str) -> None:
        ck = self.cfg.checkpoint
        store.prune(self.ckpt_dir, ck.keep_last, ck.best_metric, ck.best_mode, keep=(self.pinned,),
                    remove_fn=trainer.strategy.remove_checkpoint)
        if self.cfg.wandb.log_checkpoints:
            from ganscale.ops.wandb import log_checkpoint_artifact

            best = ck.best_metric and store.best_checkpoint(self.ckpt_dir, ck.best_metric, ck.best_mode)
            log_checkpoint_artifact(trainer, path, store.read_marker(path), is_best=bool(best) and best == path)

    @staticmethod
    def _metrics_at(trainer, it: int) -> dict:
        """The evaluation done at iteration `it` by EvalAndPlot (earlier callback), if any."""
        for cb in trainer.callbacks:
            latest = getattr(cb, "latest_metrics", None)
            if latest and latest.get("iter") == it:
                return {k: v for k, v in latest.items() if k != "iter"}
        return {}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        states = rng.gather(rng.capture(), trainer.world_size)  # collective
        checkpoint["ganscale_ops"] = {
            "rng": states,
            "world_size": trainer.world_size,
            "metrics": self._metrics_at(trainer, pl_module.iteration),
        }

    # ----------------------------------------------------------------- loading
    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        ops = checkpoint.get("ganscale_ops") or {}
        states = ops.get("rng") or []
        if len(states) == trainer.world_size:
            self._pending_rng = states[trainer.global_rank]
        elif states:
            warnings.warn(f"checkpoint written by {len(states)} ranks, resumed on {trainer.world_size}: "
                          "global RNG states are not restored (ganscale's noise and data streams are unaffected)")
        self._last_iteration = int(checkpoint.get("ganscale", {}).get("iteration", -1))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # Restored here, not at load time: Lightning draws from the global generator between the
        # two (DataLoader iterator seeds) and an uninterrupted run drew that at its own start.
        if self._pending_rng is not None:
            rng.restore(self._pending_rng)
            self._pending_rng = None


def describe(path: str) -> str:
    meta = store.read_marker(path)
    return f"{os.path.basename(path)} (iteration {meta.get('iteration', store.iteration_of(path))})"
