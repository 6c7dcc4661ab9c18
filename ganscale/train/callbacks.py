"""Lightning callbacks that count in ganscale iterations (Lightning's global_step counts every
optimizer.step() under manual optimization, i.e. n_disc + 1 or more per iteration).

The evaluation callback (metrics, sample plots) is ganscale.metrics.callback.EvalAndPlot."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar

# Checkpoints (atomic, with completion markers) live in ganscale.ops.checkpoint; re-exported here
# for the code that lists a run's checkpoints.
from ganscale.ops.checkpoint.store import checkpoint_path, list_checkpoints  # noqa: F401
from ganscale.utils.intervals import due


class IterationProgressBar(TQDMProgressBar):
    """Progress in ganscale iterations: n / max_iters, it/s and the main losses.

    Redrawn when both `refresh_s` seconds and `min_iters` iterations have passed since the last
    redraw (and at the end), rather than every 10 iterations: a redraw (terminal write, metrics to
    floats) costs milliseconds, which every-10-iterations made a tenth of a fast GPU iteration
    (benchmarks/overhead.py, docs/overhead.md); a slow loop still redraws no more than before."""

    def __init__(self, refresh_s: float = 0.5, min_iters: int = 10):
        super().__init__(refresh_rate=1)
        self.refresh_s, self.min_iters = refresh_s, min_iters
        self._last_time, self._last_n = float("-inf"), -min_iters

    def _should_update(self, current: int, total: int) -> bool:
        if not self.is_enabled:
            return False
        now = time.monotonic()
        if current == total or (now - self._last_time >= self.refresh_s and current - self._last_n >= self.min_iters):
            self._last_time, self._last_n = now, current
            return True
        return False

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
        if pl_module.iteration >= self.cfg.trainer.max_iters:  # resumed from the final checkpoint
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        last = self.cfg.trainer.max_iters
        if due(it, self.cfg.trainer.log_every, last):
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
                **{f"skipped/{p}": n for p, n in pl_module.num_skipped.items()},
            })
            metrics.update(_data_counters(trainer, pl_module))
            for name, opt in zip(pl_module.player_names, trainer.optimizers):
                metrics[f"lr/{name}"] = opt.param_groups[0]["lr"]
            self._t0, self._it0 = time.perf_counter(), it
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=it)
            for k in self.PROG_BAR:
                if k in metrics:
                    pl_module.log(k, metrics[k], prog_bar=True, logger=False, rank_zero_only=True)
        if it >= last:
            trainer.should_stop = True


def _data_counters(trainer, pl_module) -> dict[str, float]:
    """The data module's counters (e.g. skipped corrupt samples), summed over ranks (collective)."""
    counters = getattr(trainer.datamodule, "log_stats", dict)()
    if not counters:
        return {}
    keys = sorted(counters)
    vals = torch.tensor([counters[k] for k in keys], dtype=torch.float64, device=pl_module.device)
    vals = trainer.strategy.reduce(vals, reduce_op="sum")
    return {k: float(v) for k, v in zip(keys, vals.tolist())}
