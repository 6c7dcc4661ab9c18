"""What G is measured by and how its samples are drawn, chosen by the kind of data (`DataInfo.kind`).

    points   mode coverage of the data's 2D mixture (modes.py: modes, hq_fraction, kl) and a
             scatter plot of G's samples over the true means
    image    the `eval.*` image metrics (evaluator.py: FID, KID, IS, precision/recall, class
             accuracy) computed across all ranks, and a grid of G's samples (one row per class
             when conditional) beside one of real images
    text     a text-to-image run (game.condition=text, whatever its images): R-precision, the
             captioned-digits judge and the image metrics for captions of real images, and a
             grid with each caption under its image (text_eval.py)
    tokens   NLL under the oracle the token shards were drawn from (oracle.py), when they name one

`build_evaluation(cfg, datamodule, run_dir, device)` picks one from EVALUATIONS; a new kind of data
registers its evaluation with one function. The data module only yields data: `means` and `std`
of a mixture, `real_images(n)` and `reference_batches(b)` of image data. `metrics/callback.py`
runs the evaluation during training.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Protocol

import torch

from ganscale.registry import Registry

SampleFn = Callable[..., torch.Tensor]
"""sample_fn(n, seed=None, y=None, truncation=None) -> n samples of G on CPU."""

NUM_PLOT_SAMPLES = 64


class Evaluation(Protocol):
    def prepare(self) -> None:
        """Load what `evaluate` needs (e.g. the feature network) so a missing file fails at start-up."""

    def evaluate(self, sample_fn: SampleFn) -> dict:
        """Metrics of G. Every rank calls it (an evaluation may run collectives); {} = nothing measured."""

    def plot(self, sample_fn: SampleFn, path: str, title: Optional[str] = None) -> Optional[str]:
        """Write a figure of G's samples to `path` (rank 0 only); returns the path written, or None."""


EVALUATIONS: Registry[Callable[..., Evaluation]] = Registry("evaluation (data kind)")


class ModeEvaluation:
    """Mode coverage of a 2D Gaussian mixture (the PacGAN/VEEGAN protocol, modes.py)."""

    def __init__(self, means: torch.Tensor, std: float):
        self.means, self.std = means, std

    def prepare(self) -> None:
        pass  # nothing to load

    def evaluate(self, sample_fn: SampleFn) -> dict:
        from ganscale.metrics.modes import NUM_EVAL_SAMPLES, mode_metrics

        return mode_metrics(sample_fn(NUM_EVAL_SAMPLES), self.means, self.std)

    def plot(self, sample_fn: SampleFn, path: str, title: Optional[str] = None) -> str:
        from ganscale.metrics.modes import NUM_EVAL_SAMPLES
        from ganscale.metrics.plots import scatter_plot

        return scatter_plot(sample_fn(NUM_EVAL_SAMPLES), self.means, path, title=title)


class ImageEvaluation:
    """The image metrics of `eval.*` (built once, on first use) and sample grids."""

    def __init__(self, cfg, datamodule, run_dir: Optional[str], device: torch.device):
        self.cfg, self.data, self.run_dir, self.device = cfg, datamodule, run_dir, device
        self._evaluator = None

    def evaluator(self):
        if self._evaluator is None:
            from ganscale.metrics.evaluator import ImageEvaluator

            self._evaluator = ImageEvaluator(self.cfg, self.data.info, self.data, self.run_dir)
        return self._evaluator

    def prepare(self) -> None:
        if self.cfg.eval.metrics:
            self.evaluator()  # loading the feature network fails before training, not at the first eval

    def evaluate(self, sample_fn: SampleFn) -> dict:
        if not self.cfg.eval.metrics:
            return {}
        return self.evaluator().evaluate(sample_fn, self.device)

    def plot(self, sample_fn: SampleFn, path: str, title: Optional[str] = None) -> str:
        """A PNG grid of G samples (one row per class when conditional); the first call also writes
        real.png (real images) beside it."""
        from ganscale.metrics.plots import image_grid, to_uint8_images

        real_path = os.path.join(os.path.dirname(path), "real.png")
        if not os.path.exists(real_path) and hasattr(self.data, "real_images"):
            image_grid(to_uint8_images(self.data.real_images(NUM_PLOT_SAMPLES)), real_path)
        k = self.data.info.num_classes if self.cfg.model.conditional else 0
        if k:
            per_class = max(1, min(10, NUM_PLOT_SAMPLES // k))
            y = torch.arange(k).repeat_interleave(per_class)
            return image_grid(to_uint8_images(sample_fn(len(y), y=y)), path, nrow=per_class)
        return image_grid(to_uint8_images(sample_fn(NUM_PLOT_SAMPLES)), path)


@EVALUATIONS.register("points")
def _points(cfg, datamodule, run_dir, device) -> Optional[Evaluation]:
    if getattr(datamodule, "means", None) is None:
        return None  # points that are no mixture: no modes to cover
    return ModeEvaluation(datamodule.means, datamodule.std)


@EVALUATIONS.register("image")
def _image(cfg, datamodule, run_dir, device) -> Evaluation:
    return ImageEvaluation(cfg, datamodule, run_dir, device)


@EVALUATIONS.register("text")
def _text(cfg, datamodule, run_dir, device) -> Evaluation:
    from ganscale.metrics.text_eval import TextEvaluation

    return TextEvaluation(cfg, datamodule, run_dir, device)


@EVALUATIONS.register("tokens")
def _tokens(cfg, datamodule, run_dir, device) -> Optional[Evaluation]:
    path = getattr(datamodule, "oracle_path", "")
    if not path:
        return None  # token data drawn from no known model: nothing to score against
    from ganscale.metrics.oracle import OracleEvaluation

    return OracleEvaluation(path, cfg.eval.num_samples)


def evaluation_kind(cfg, datamodule) -> str:
    """`text` for a text-to-image run (its G needs captions), else the kind of data."""
    return "text" if cfg.game.condition == "text" else datamodule.info.kind


def build_evaluation(cfg, datamodule, run_dir: Optional[str] = None,
                     device: Optional[torch.device] = None) -> Optional[Evaluation]:
    """The evaluation of `datamodule`'s kind of data (or of a text run), or None when there is nothing
    to measure."""
    kind = evaluation_kind(cfg, datamodule)
    if kind not in EVALUATIONS:
        return None
    return EVALUATIONS[kind](cfg, datamodule, run_dir, device or torch.device("cpu"))
