"""What every data module gives the trainer: `info`, a train dataloader, evaluate and plot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import lightning as L

if TYPE_CHECKING:
    from ganscale.config.schema import RunConfig


@dataclass(frozen=True)
class DataInfo:
    kind: str
    """`points` (vectors, e.g. the 2D toys), `image` (C x H x W in [-1, 1]) or `none` (no data:
    the game draws its inputs)."""
    shape: tuple[int, ...]
    """Shape of one sample."""
    num_classes: int = 0
    """Number of classes for conditional models; 0 = unconditional."""


def stream_seed(seed: int, rank: int, index: int) -> int:
    """A 63-bit seed for batch `index` of rank `rank`: every (seed, rank, index) its own stream,
    so any batch can be regenerated without replaying the ones before it (exact resume)."""
    h = (seed * 1_000_003 + rank) * 2_147_483_647 + index
    return (h * 6364136223846793005 + 1442695040888963407) % (2**63)


class GANDataModule(L.LightningDataModule):
    """One dataloader batch = one ganscale iteration: `x` holds n_disc per-rank batches."""

    info: DataInfo

    def __init__(self, cfg: "RunConfig"):
        super().__init__()
        self.cfg = cfg
        self.batches_per_iter = cfg.gan.n_disc
        self.start_batch = 0  # stream position restored from a checkpoint

    @property
    def rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def _consumed(self) -> int:
        module = self.trainer.lightning_module if self.trainer is not None else None
        return int(getattr(module, "iteration", 0))

    def state_dict(self) -> dict:
        # One batch per iteration, so the iteration counter is the exact stream position.
        return {"batches_consumed": self._consumed()}

    def load_state_dict(self, state: dict) -> None:
        self.start_batch = int(state.get("batches_consumed", 0))

    def log_stats(self) -> dict[str, float]:
        """Counters the trainer logs summed over ranks (e.g. skipped corrupt samples); same keys on every rank."""
        return {}

    def evaluate(self, sample_fn, iteration: int) -> dict:
        """Metrics of G; sample_fn(n, seed=None, y=None, truncation=None) -> samples on CPU.
        Image data: the `eval.*` metrics (FID, KID, IS, precision/recall, class accuracy), computed
        across all ranks (every rank calls this), against `reference_batches`. Others: none."""
        if self.info.kind != "image" or not self.cfg.eval.metrics:
            return {}
        return self.image_evaluator().evaluate(sample_fn, self._eval_device())

    def prepare_evaluation(self) -> None:
        """Load what `evaluate` needs (the feature network) so missing files fail at start-up."""
        if self.info.kind == "image" and self.cfg.eval.metrics:
            self.image_evaluator()

    def image_evaluator(self):
        """The evaluator of this data (built once; loading the feature network fails early)."""
        if getattr(self, "_image_evaluator", None) is None:
            from ganscale.metrics.evaluator import ImageEvaluator

            run_dir = self.trainer.default_root_dir if self.trainer is not None else None
            self._image_evaluator = ImageEvaluator(self.cfg, self.info, self, run_dir)
        return self._image_evaluator

    def _eval_device(self):
        import torch

        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def reference_batches(self, batch_size: int):
        """Real samples for reference statistics: dicts {"x": [B, C, H, W] in [-1, 1], "y"?} in a
        fixed order (the same on every call and every rank), one pass over the data."""
        from ganscale.errors import UserError

        raise UserError(f"data.kind={self.cfg.data.kind} provides no real images for image metrics; "
                        "set eval.metrics=[] or use image data (data.kind=shards)")

    def reference_key(self) -> str:
        """Identifies the real data (and its preprocessing) in the reference-statistics cache key."""
        return f"{self.cfg.data.kind}:{self.info.shape}"

    def reference_cache_dir(self) -> Optional[str]:
        """Folder for cached reference statistics next to the data, or None (-> the run directory)."""
        return None

    def plot(self, sample_fn, path: str, title: Optional[str] = None) -> Optional[str]:
        return None
