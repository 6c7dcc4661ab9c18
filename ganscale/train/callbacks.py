"""Lightning callbacks that count in ganscale iterations (Lightning's global_step counts every
optimizer.step() under manual optimization, i.e. n_disc + 1 or more per iteration)."""

from __future__ import annotations

import glob
import json
import os
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_only


def _due(iteration: int, every: int, last: int) -> bool:
    return iteration == last or (every > 0 and iteration % every == 0)


class IterationProgressBar(TQDMProgressBar):
    """Progress in ganscale iterations: n / max_iters, it/s and the main losses."""

    @property
    def total_train_batches(self):
        return self.trainer.lightning_module.cfg.trainer.max_iters

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description("train")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, pl_module.iteration - 1)

    def get_metrics(self, trainer, pl_module) -> dict:
        m = super().get_metrics(trainer, pl_module)
        m.pop("v_num", None)
        return m


class TrainLogger(L.Callback):
    """Logs the phase statistics every `trainer.log_every` iterations, averaged across ranks,
    with iteration throughput; stops training at `trainer.max_iters`."""

    PROG_BAR = ("loss/D", "loss/G")

    def __init__(self, cfg):
        self.cfg = cfg
        self._t0 = time.perf_counter()
        self._it0 = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0, self._it0 = time.perf_counter(), pl_module.iteration

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        last = self.cfg.trainer.max_iters
        if _due(it, self.cfg.trainer.log_every, last):
            keys = sorted(pl_module.stats)
            vals = torch.stack([pl_module.stats[k].float() for k in keys]) if keys else torch.zeros(0)
            vals = trainer.strategy.reduce(vals, reduce_op="mean")  # collective: every rank calls it
            metrics: dict[str, Any] = {k: float(v) for k, v in zip(keys, vals.tolist())}  # host sync
            dt = time.perf_counter() - self._t0
            its = (it - self._it0) / dt if dt > 0 else 0.0
            global_batch = self.cfg.data.batch_size * trainer.world_size
            metrics.update({
                "iter": it,
                "perf/it_per_s": its,
                "perf/samples_per_s": its * global_batch * (self.cfg.gan.n_disc + 1),
                "batch/global": global_batch,
                "skipped/D": pl_module.num_skipped["D"],
                "skipped/G": pl_module.num_skipped["G"],
            })
            for name, opt in zip(("G", "D"), trainer.optimizers):
                metrics[f"lr/{name}"] = opt.param_groups[0]["lr"]
            self._t0, self._it0 = time.perf_counter(), it
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=it)
            for k in self.PROG_BAR:
                if k in metrics:
                    pl_module.log(k, metrics[k], prog_bar=True, logger=False, rank_zero_only=True)
        if it >= last:
            trainer.should_stop = True


class EvalAndPlot(L.Callback):
    """Metrics of G_ema and a sample plot at intervals and at the end (rank 0 writes files).
    Writes <run>/metrics.jsonl (one line per evaluation) and <run>/final_metrics.json."""

    def __init__(self, cfg, run_dir: str):
        self.cfg, self.run_dir = cfg, run_dir

    def _sample_fn(self, pl_module):
        return lambda n: pl_module.sample(n, seed=self.cfg.seed + 12345)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it, last = pl_module.iteration, self.cfg.trainer.max_iters
        dm = trainer.datamodule
        if _due(it, self.cfg.trainer.eval_every, last):
            metrics = dm.evaluate(self._sample_fn(pl_module), it)
            if metrics:
                self._write(trainer, it, metrics, final=(it == last))
        if _due(it, self.cfg.trainer.plot_every, last):
            self._plot(trainer, pl_module, it)

    @rank_zero_only
    def _plot(self, trainer, pl_module, it: int) -> None:
        path = os.path.join(self.run_dir, "plots", f"samples_{it:08d}.png")
        trainer.datamodule.plot(self._sample_fn(pl_module), path, title=f"G_ema, iteration {it}")

    @rank_zero_only
    def _write(self, trainer, it: int, metrics: dict, final: bool) -> None:
        for logger in trainer.loggers:
            logger.log_metrics({f"metrics/{k}": v for k, v in metrics.items()}, step=it)
        with open(os.path.join(self.run_dir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps({"iter": it, **metrics}) + "\n")
        if final:
            with open(os.path.join(self.run_dir, "final_metrics.json"), "w") as f:
                json.dump({"iter": it, **metrics}, f, indent=2)


class IterationCheckpoint(L.Callback):
    """Checkpoint every `trainer.ckpt_every` iterations and at the end, keeping the newest few."""

    def __init__(self, cfg, ckpt_dir: str, keep_last: int = 3):
        self.cfg, self.ckpt_dir, self.keep_last = cfg, ckpt_dir, keep_last

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        if _due(it, self.cfg.trainer.ckpt_every, self.cfg.trainer.max_iters):
            trainer.save_checkpoint(checkpoint_path(self.ckpt_dir, it))  # all ranks call; rank 0 writes
            self._prune(trainer)

    @rank_zero_only
    def _prune(self, trainer) -> None:
        for old in list_checkpoints(self.ckpt_dir)[: -self.keep_last]:
            trainer.strategy.remove_checkpoint(old)  # a strategy may keep more beside the file (DeepSpeed shards)


def checkpoint_path(ckpt_dir: str, iteration: int) -> str:
    return os.path.join(ckpt_dir, f"iter_{iteration:08d}.ckpt")


def list_checkpoints(ckpt_dir: str) -> list[str]:
    """Checkpoints oldest first (names sort by iteration)."""
    return sorted(glob.glob(os.path.join(ckpt_dir, "iter_*.ckpt")))
