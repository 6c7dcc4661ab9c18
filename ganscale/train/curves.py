"""Training-curve PNG of a run, redrawn every `trainer.plot_every` iterations (when that is cheap)
and at the end.

    ganscale train trainer.plot_every=500      # <run>/plots/curves.png: losses, D(x)/D(G(z)),
                                               # gradient norms, learning rates, evaluation metrics

The figure is drawn from the run's own files (metrics.csv, metrics.jsonl), so it shows the whole
history of a resumed run, and a run directory can be re-plotted offline with
`ganscale.train.plots.training_curves(run_dir)`.
"""

from __future__ import annotations

import os
import time

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from ganscale.train.plots import training_curves


# An interval's figure is skipped when the previous one took more than this share of the training
# time since: a multi-panel figure costs about a second, a fast toy job runs 1000 iterations in
# about ten, and the curves must not slow training down. The final figure is always drawn.
MAX_TIME_SHARE = 0.02


class TrainingCurves(L.Callback):
    """Rank 0 writes <run>/plots/curves.png. Place it after the callbacks that log and evaluate,
    so an interval's figure includes that iteration's rows."""

    def __init__(self, cfg, run_dir: str):
        self.cfg, self.run_dir = cfg, run_dir
        self.series: list[str] = []
        """The series names of the newest figure (what `training_curves` drew)."""
        self._cost = 0.0  # seconds the last figure took
        self._since = time.perf_counter()  # when it was finished

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        every, it = self.cfg.trainer.plot_every, pl_module.iteration
        if every > 0 and it % every == 0 and it < self.cfg.trainer.max_iters:  # the last one: on_train_end
            if self._cost <= MAX_TIME_SHARE * (time.perf_counter() - self._since):
                self.draw(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self.draw(trainer)

    @rank_zero_only
    def draw(self, trainer) -> None:
        start = time.perf_counter()  # metrics.csv is current: the run's CSV logger writes every row it logs
        self.series = training_curves(self.run_dir, os.path.join(self.run_dir, "plots", "curves.png"))
        self._since = time.perf_counter()
        self._cost = self._since - start
