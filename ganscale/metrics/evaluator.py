"""Image evaluation across all ranks: each rank generates its share of the samples, extracts
features, and the features are gathered so every rank computes the same metrics.

Sample i (0 <= i < eval.num_samples) belongs to batch k = i // eval.batch_size; batch k draws
its latents from seed (eval.seed, k) and, for a conditional G, has labels i % num_classes, and
rank r generates the batches k = r, r + W, r + 2W, ... Gathered features are put back in sample
order, so 1 rank and W ranks compute the same numbers (up to float noise).

Reference statistics of the real data (FID moments; a subset of features for KID and P/R) are
computed the same way once, then cached in a file named by a hash of the data key, the number
of samples and the extractor's weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import torch
import torch.distributed as dist
from torch import Tensor

from ganscale.distributed.collectives import all_agree
from ganscale.metrics import fidelity
from ganscale.metrics.evaluation import SampleFn
from ganscale.metrics.extractors import FeatureExtractor, build_extractor
from ganscale.registry import METRICS
from ganscale.metrics.plots import to_uint8
from ganscale.utils.files import atomic_torch_save
from ganscale.utils.ranks import rank as global_rank
from ganscale.utils.ranks import world_size

CACHE_VERSION = 1
Conditions = Callable[[int, int], Any]
"""conditions(start, m) -> the conditions of samples start..start+m (anything sample_fn's `y` takes)."""
# ----------------------------------------------------------------------------- distributed
def gather_rows(rows: Tensor, index: Tensor) -> Tensor:
    """All ranks' rows, ordered by their global `index` (each rank holds a disjoint set)."""
    world = world_size()
    if world == 1:
        return rows[index.argsort()]
    count = torch.tensor([len(rows)], device=rows.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    most = int(max(c.item() for c in counts))  # host sync: sizes for the padded gather
    pad = most - len(rows)
    padded = torch.cat([rows, rows.new_zeros(pad, *rows.shape[1:])]) if pad else rows
    padded_idx = torch.cat([index, index.new_full((pad,), -1)]) if pad else index
    all_rows = [torch.empty_like(padded) for _ in range(world)]
    all_idx = [torch.empty_like(padded_idx) for _ in range(world)]
    dist.all_gather(all_rows, padded.contiguous())
    dist.all_gather(all_idx, padded_idx.contiguous())
    rows_cat, idx_cat = torch.cat(all_rows), torch.cat(all_idx)
    keep = idx_cat >= 0
    rows_cat, idx_cat = rows_cat[keep], idx_cat[keep]
    return rows_cat[idx_cat.argsort()]


# ----------------------------------------------------------------------------- features
@dataclass
class Features:
    features: Tensor
    logits: Optional[Tensor] = None
    channel_logits: Optional[Tensor] = None
    labels: Optional[Tensor] = None


def gather_outputs(batches: Iterator[tuple[int, Tensor, Optional[Tensor]]], extractor: Callable[[Tensor], dict],
                   device, shape: tuple[int, ...], with_labels: bool) -> dict[str, Tensor]:
    """Every output of `extractor` on (global start index, images in [-1, 1], labels) batches,
    gathered over ranks in sample order (on CPU). Every rank takes part in every gather, also a
    rank that had no batch: the keys and row shapes come from a probe of the extractor, not from
    the data."""
    probe = extractor(torch.zeros(1, *shape, dtype=torch.uint8, device=device))
    cols: dict[str, list[Tensor]] = {k: [] for k in probe}
    cols["labels"], index = [], []
    for start, x, y in batches:
        out = extractor(to_uint8(x.to(device)))
        for key in probe:
            cols[key].append(out[key].float())
        if with_labels:
            cols["labels"].append(y.to(device).long())
        index.append(torch.arange(start, start + len(x), device=device))
    idx = torch.cat(index) if index else torch.zeros(0, dtype=torch.long, device=device)
    gathered = {}
    for key, parts in cols.items():
        if key == "labels" and not with_labels:
            continue
        if parts:
            rows = torch.cat(parts)
        elif key == "labels":
            rows = torch.zeros(0, dtype=torch.long, device=device)
        else:
            rows = probe[key].new_zeros(0, *probe[key].shape[1:]).float()
        gathered[key] = gather_rows(rows, idx).cpu()
    return gathered


def _extract_batches(batches: Iterator[tuple[int, Tensor, Optional[Tensor]]], extractor: FeatureExtractor,
                     device, shape: tuple[int, ...], with_labels: bool) -> Features:
    """Features of (global start index, images in [-1, 1], labels) batches, gathered over ranks."""
    return Features(**gather_outputs(batches, extractor, device, shape, with_labels))


# ----------------------------------------------------------------------------- evaluator
class ImageEvaluator:
    """FID/KID/IS/PR/class accuracy of a generator against a data module's real images."""

    def __init__(self, cfg, info, data, run_dir: Optional[str] = None):
        self.cfg, self.ecfg, self.info, self.data = cfg, cfg.eval, info, data
        self.run_dir = run_dir
        self.extractor: FeatureExtractor = build_extractor(cfg.eval)  # fails early if the weights are missing
        self._reference: Optional[dict] = None

    # -- reference statistics
    def cache_path(self) -> str:
        key = json.dumps({
            "version": CACHE_VERSION, "data": self.data.reference_key(), "num": self.ecfg.num_reference,
            "kept": self._num_kept(), "extractor": self.extractor.fingerprint, "shape": list(self.info.shape),
        }, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        folder = self.ecfg.cache_dir or self.data.reference_cache_dir() or \
            os.path.join(self.run_dir or ".", "refstats")
        return os.path.join(folder, f"refstats-{self.extractor.name}-{digest}.pt")

    def _num_kept(self) -> int:
        return min(self.ecfg.num_reference, self.ecfg.pr_num_samples)

    def _real_batches(self, rank: int, world: int) -> Iterator[tuple[int, Tensor, Optional[Tensor]]]:
        seen, k = 0, 0
        for batch in self.data.reference_batches(self.ecfg.batch_size):
            if seen >= self.ecfg.num_reference:
                break
            x = batch["x"][: self.ecfg.num_reference - seen]
            if k % world == rank:
                y = batch.get("y")
                yield seen, x, (y[: len(x)] if y is not None else None)
            seen += len(x)
            k += 1

    def reference(self, device) -> dict:
        """Real moments and kept features, from the cache file or computed (once) and cached."""
        if self._reference is not None:
            return self._reference
        rank, world = global_rank(), world_size()
        path = self.cache_path()
        if all_agree(os.path.isfile(path), device):  # every rank reads the cache, or every rank computes
            ref = torch.load(path, map_location="cpu", weights_only=True)
        else:
            feats = _extract_batches(self._real_batches(rank, world), self.extractor, device, self.info.shape, False)
            if len(feats.features) < 2:
                from ganscale.errors import UserError

                raise UserError(f"the data gave {len(feats.features)} real images for the reference statistics; "
                                f"eval.num_reference={self.ecfg.num_reference} needs at least 2")
            ref = {"moments": fidelity.feature_moments(feats.features), "features": feats.features[: self._num_kept()],
                   "num": len(feats.features)}
            if rank == 0:
                atomic_torch_save(ref, path)  # another run reading the cache never sees half a file
        self._reference = ref
        return ref

    # -- generated samples
    def _fake_batches(self, sample_fn: SampleFn, rank: int, world: int, conditions: Optional[Conditions] = None):
        n, b = self.ecfg.num_samples, self.ecfg.batch_size
        num_classes = self.num_classes
        for k in range(rank, math.ceil(n / b), world):
            start = k * b
            m = min(b, n - start)
            y = (torch.arange(start, start + m) % num_classes) if num_classes else None
            given = conditions(start, m) if conditions is not None else y
            x = sample_fn(m, seed=self.ecfg.seed * 1_000_003 + k, y=given, truncation=self.ecfg.truncation)
            yield start, x, y

    @property
    def num_classes(self) -> int:
        """Classes G is conditioned on (labels of the generated samples); 0 = unconditional."""
        return self.info.num_classes if self.cfg.model.conditional else 0

    def evaluate(self, sample_fn: SampleFn, device=None, conditions: Optional[Conditions] = None) -> dict:
        """Metrics of sample_fn's images; every rank must call it (collectives inside). `conditions`:
        what samples start..start+m are conditioned on (e.g. captions of a text-to-image run),
        instead of the class labels of a conditional G."""
        device = device or torch.device("cpu")
        self.extractor.to(device)
        ref = self.reference(device)
        rank, world = global_rank(), world_size()
        fake = _extract_batches(self._fake_batches(sample_fn, rank, world, conditions), self.extractor, device,
                                self.info.shape, self.num_classes > 0)
        return self.metrics(ref, fake)

    def metrics(self, ref: dict, fake: Features) -> dict:
        out: dict = {}
        for name in dict.fromkeys(self.ecfg.metrics):  # in the config's order, each once
            out.update(METRICS[name](ref, fake, self.ecfg))
        out["num_samples"] = len(fake.features)
        out["num_reference"] = int(ref["num"])
        return out
