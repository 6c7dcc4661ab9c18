"""The image metrics `eval.metrics` names, one function each, registered in ganscale/registry.py
(METRICS). Each takes the reference statistics, the generated samples' gathered features and
the eval config, and returns the keys it adds to the metrics (the formulas: fidelity.py).

    ganscale eval runs/<run> eval.metrics=[fid,kid] eval.inception_path=weights.pth
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ganscale.metrics import fidelity

if TYPE_CHECKING:
    from ganscale.metrics.config import EvalConfig
    from ganscale.metrics.evaluator import Features


def _kept(fake: Features, cfg: EvalConfig):
    """KID and precision/recall compare at most eval.pr_num_samples generated features."""
    return fake.features[: cfg.pr_num_samples]


def fid(ref: dict, fake: Features, cfg: EvalConfig) -> dict:
    return {"fid": fidelity.fid(ref["moments"], fake.features)}


def kid(ref: dict, fake: Features, cfg: EvalConfig) -> dict:
    value, std = fidelity.kid(ref["features"], _kept(fake, cfg), cfg.kid_subsets, cfg.kid_subset_size, cfg.seed)
    return {"kid": value, "kid_std": std}


def inception_score(ref: dict, fake: Features, cfg: EvalConfig) -> dict:
    if fake.logits is None:  # the extractor does not classify
        return {}
    value, std = fidelity.inception_score(fake.logits, cfg.is_splits, cfg.seed)
    return {"is": value, "is_std": std}


def precision_recall(ref: dict, fake: Features, cfg: EvalConfig) -> dict:
    precision, recall = fidelity.precision_recall(ref["features"], _kept(fake, cfg), cfg.pr_k)
    return {"precision": precision, "recall": recall}


def class_accuracy(ref: dict, fake: Features, cfg: EvalConfig) -> dict:
    if fake.logits is None or fake.labels is None:  # no classifier, or an unconditional G
        return {}
    mean, per_class = fidelity.class_accuracy(fake.logits, fake.labels)
    return {"class_acc": mean, "class_acc_min": min(per_class)}


def mode_coverage(ref: dict, fake: Features, cfg: EvalConfig) -> dict:
    if fake.channel_logits is None:  # not a stacked (several gray channels) dataset
        return {}
    modes, kl, num_modes = fidelity.mode_coverage(fake.channel_logits)
    return {"modes": modes, "modes_kl": kl, "num_modes": num_modes}
