"""Typed config of image evaluation (`eval.*`): FID, KID, IS, precision/recall, class accuracy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ganscale.config.schema import RunConfig


@dataclass
class TextEvalConfig:
    """Evaluation of text-to-image runs (game.condition=text): G is sampled for captions of real
    images (ganscale/metrics/text_eval.py)."""

    data: str = ""
    """Captioned shards (a folder, tar, brace pattern) whose captions G is sampled for; empty = the
    run's training shards (data.shards.urls). A test split is the usual choice."""
    num_captions: int = 500
    """Images of `data` (one caption each, drawn with eval.seed) that R-precision and the judge score;
    0 turns the text metrics off. FID/KID's fakes take captions of up to eval.num_samples images."""
    candidates: int = 100
    """R-precision: the true caption among itself and candidates - 1 mismatched ones (AttnGAN: 100)."""
    judge: str = ""
    """Captioned digits: the judge file of `ganscale text judge` (caption_exact, caption_held_out,
    caption_control); empty = no judge metrics."""
    holdout: str = ""
    """Held-out (colour, digit) pairs for caption_held_out, e.g. "red 7,blue 2"; empty = the pairs
    the training shards' manifest records (ganscale data synth captioned-digits --holdout)."""

    def check(self, root) -> list[str]:
        out = []
        if self.num_captions < 0:
            out.append(f"num_captions={self.num_captions} must be >= 0")
        if self.candidates < 2:
            out.append(f"candidates={self.candidates} must be >= 2")
        return out


@dataclass
class EvalConfig:
    metrics: list[str] = field(default_factory=lambda: ["fid", "kid", "is", "pr"])
    """Image metrics to compute (fid, kid, is, pr, class_acc, modes); [] = none. class_acc (share of
    class-c samples the extractor labels c, averaged over classes) and modes (Stacked MNIST: digit
    triples covered and KL to uniform, each channel classified) need extractor=classifier."""
    num_samples: int = 10000
    """Generated samples per evaluation, in total over all ranks (the FID protocol uses 50000)."""
    num_reference: int = 10000
    """Real samples for the reference statistics (computed once, then read from the cache)."""
    batch_size: int = 250
    """Samples per generator / feature-extractor call on each rank."""
    extractor: str = "inception"
    """Feature network: inception (InceptionV3, needs inception_path) or classifier (needs classifier_path)."""
    inception_path: str = ""
    """Local path of weights-inception-2015-12-05-6726825d.pth (nothing is downloaded at run time)."""
    classifier_path: str = ""
    """Local path of a digit classifier saved by `ganscale classifier train`."""
    truncation: Optional[float] = None
    """Sample with truncated z (|z| <= truncation) for evaluation; null = the plain prior."""
    seed: int = 0
    """Seed of the evaluation latents: every evaluation of a run uses the same z and labels."""
    ema: bool = True
    """Sample the generator's EMA (G_ema) where the run keeps one, as evaluations do by default;
    false samples the raw G: the EMA ablation without a second training (the average never feeds
    back into the game), and the generator to read early in a run, before the average catches up."""
    standing_stats: int = 0
    """BigGAN's standing statistics: before sampling, re-estimate G's BatchNorm statistics as the
    average over this many forward passes of a training batch in training mode (BigGAN-PyTorch
    uses 16); 0 = the running averages kept during training (ganscale/nets/standing_stats.py)."""
    kid_subsets: int = 100
    """KID: number of random subsets the MMD estimate is averaged over."""
    kid_subset_size: int = 1000
    """KID: subset size (capped at the number of samples)."""
    is_splits: int = 10
    """Inception Score: number of splits (mean and std over splits)."""
    pr_k: int = 3
    """Precision/recall (Kynkaanniemi et al. 2019): k of the k-NN radius of each manifold."""
    pr_num_samples: int = 10000
    """Precision/recall and KID use at most this many real and generated features."""
    cache_dir: str = ""
    """Where reference statistics are cached; empty = the data's cache folder (or <run dir>/refstats)."""
    text: TextEvalConfig = field(default_factory=TextEvalConfig)
    """Text-to-image runs: R-precision, the captioned-digits judge, and the captions the image
    metrics' fakes are drawn for."""

    def check(self, root: "RunConfig") -> list[str]:
        from ganscale.registry import EXTRACTORS, METRICS

        out = []
        bad = [m for m in self.metrics if m not in METRICS]
        if bad:
            out.append(f"metrics={self.metrics}: {bad} unknown; choose from: {', '.join(METRICS.choices())}")
        p = EXTRACTORS.problem("extractor", self.extractor)
        if p:
            out.append(p)
        for k in ("num_samples", "num_reference"):
            if getattr(self, k) < 2:
                out.append(f"{k}={getattr(self, k)} must be >= 2")
        if self.standing_stats < 0:
            out.append(f"standing_stats={self.standing_stats} must be >= 0 (0 = off)")
        if self.standing_stats > 0 and root.game.condition == "text":
            out.append(f"standing_stats={self.standing_stats}: not for text-to-image runs (their samples are "
                       "drawn for captions, not for the conditions standing statistics draw); set it to 0")
        for k in ("batch_size", "kid_subsets", "kid_subset_size", "is_splits", "pr_k", "pr_num_samples"):
            if getattr(self, k) < 1:
                out.append(f"{k}={getattr(self, k)} must be >= 1")
        if self.truncation is not None and self.truncation <= 0:
            out.append(f"truncation={self.truncation} must be > 0 (or null)")
        for m in ("class_acc", "modes"):
            if m in self.metrics and self.extractor != "classifier":
                out.append(f"metrics has {m}, which needs extractor=classifier (a network that predicts the classes)")
        return out
