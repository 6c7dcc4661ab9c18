"""The evaluation during training: a Lightning callback that measures G_ema and plots its samples.

    ganscale train trainer.eval_every=500 trainer.plot_every=1000   # and always at the last iteration

Every rank evaluates (image metrics gather features across ranks); rank 0 writes
<run>/metrics.jsonl (one line per evaluation), <run>/final_metrics.json (the last iteration) and
<run>/plots/samples_<iter>.png, and logs them to the trainer's loggers. `latest_metrics` is what
the checkpoint callback records in the marker (best checkpoint by FID). What is measured depends on
the data (evaluation.py).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from ganscale.metrics.evaluation import Evaluation, build_evaluation
from ganscale.utils.files import atomic_write_json
from ganscale.utils.intervals import due

SAMPLE_SEED_OFFSET = 12345
"""Evaluation and plots draw G's samples from seed `cfg.seed + SAMPLE_SEED_OFFSET` (the same z every time)."""


class EvalAndPlot(L.Callback):
    """Metrics of G_ema and a sample plot at intervals and at the end (rank 0 writes files)."""

    def __init__(self, cfg, run_dir: str):
        self.cfg, self.run_dir = cfg, run_dir
        self.evaluation: Optional[Evaluation] = None
        self.latest_metrics: dict = {}
        """The newest evaluation, {"iter": it, **metrics} (the checkpoint callback reads it)."""

    def on_train_start(self, trainer, pl_module) -> None:
        if pl_module.game.sample_net is None:
            return  # a game without a generator (adversarial cryptography, ...) has nothing to sample
        self.evaluation = build_evaluation(self.cfg, trainer.datamodule, self.run_dir, trainer.strategy.root_device)
        if self.evaluation is not None:
            self.evaluation.prepare()  # e.g. a missing weight file fails before training, not at the first eval

    def _sample_fn(self, pl_module):
        def sample(n, seed=None, y=None, truncation=None):
            seed = self.cfg.seed + SAMPLE_SEED_OFFSET if seed is None else seed
            return pl_module.sample(n, seed=seed, y=y, truncation=truncation)

        return sample

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.evaluation is None:
            return
        it, last = pl_module.iteration, self.cfg.trainer.max_iters
        evaluate, plot = due(it, self.cfg.trainer.eval_every, last), due(it, self.cfg.trainer.plot_every, last)
        if not (evaluate or plot):
            return
        with pl_module.standing_stats(self.cfg.eval.standing_stats, seed=self.cfg.eval.seed):
            if evaluate:
                metrics = self.evaluation.evaluate(self._sample_fn(pl_module))  # every rank: collectives inside
                if metrics:
                    self.latest_metrics = {"iter": it, **metrics}
                    self._write(trainer, it, metrics, final=(it == last))
            if plot:
                self._plot(trainer, pl_module, it)

    @rank_zero_only
    def _plot(self, trainer, pl_module, it: int) -> None:
        path = os.path.join(self.run_dir, "plots", f"samples_{it:08d}.png")
        path = self.evaluation.plot(self._sample_fn(pl_module), path, title=f"G_ema, iteration {it}")
        for logger in trainer.loggers:  # e.g. W&B shows the plots next to the curves
            if path and hasattr(logger, "log_image"):
                logger.log_image("samples", [path], step=it)

    @rank_zero_only
    def _write(self, trainer, it: int, metrics: dict, final: bool) -> None:
        for logger in trainer.loggers:
            logger.log_metrics({f"metrics/{k}": v for k, v in metrics.items()}, step=it)
        with open(os.path.join(self.run_dir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps({"iter": it, **metrics}) + "\n")
        if final:
            atomic_write_json(os.path.join(self.run_dir, "final_metrics.json"), {"iter": it, **metrics}, indent=2)
