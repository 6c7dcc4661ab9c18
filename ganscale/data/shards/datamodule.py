"""`data.kind=shards`: stream WebDataset shards made by `ganscale data pack` into training.

    ganscale data pack ../shared/data/mnist /tmp/mnist-shards
    ganscale train configs/mnist/mlp_shards.yaml data.shards.urls=/tmp/mnist-shards
    ganscale train configs/mnist/mlp_shards.yaml data.shards.urls='/tmp/mnist-shards/data-{000000..000011}.tar' \
        data.num_workers=2 trainer.devices=2

One dataloader batch is one ganscale iteration: "x" holds n_disc per-rank batches (uint8 in the
workers, normalised to [-1, 1] after the transfer to the device; int64 [B, L] token ids for token
shards, `ganscale data synth oracle-sequences`), "y" the labels of
class-conditional data, "text" / "text_emb" one caption (and embedding) of caption data, and
"captions" / "caption_ids" / "caption_lengths" / "caption_counts" / "caption_emb" all of them.
See ganscale/data/shards/stream.py for who reads what, exact resume and bad-data handling.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch.utils.data import DataLoader

from ganscale.data.base import DataInfo, GANDataModule
from ganscale.data.shards.decode import Decoder, TokenDecoder
from ganscale.data.shards.spec import ShardSet, probe_shard, resolve_shards
from ganscale.data.shards.stream import (
    POS_KEY,
    STATS_KEY,
    ShardStream,
    SlotPosition,
    StreamPlan,
    epoch_batches,
    iter_samples,
    worker_init,
)
from ganscale.utils.ranks import process_group

def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return x.float().div_(127.5).sub_(1.0)


class ShardsDataModule(GANDataModule):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.scfg = cfg.data.shards
        # UserError on bad specs
        self.shards: ShardSet = resolve_shards(self.scfg.urls, self.scfg.manifest, self.scfg.format)
        if self.scfg.probe:
            probe_shard(self.shards.urls[0])
        self.manifest = self.shards.manifest
        self.vocab = self._load_vocab()
        if self.manifest.tokens:  # token sequences (`ganscale data synth oracle-sequences`)
            self.decoder = TokenDecoder(self.manifest.token_length, self.manifest.token_vocab)
            self.info = DataInfo(kind="tokens", shape=self.decoder.shape, vocab=self.manifest.token_vocab)
        else:
            self.decoder = Decoder.build(self.scfg, self.manifest, self.vocab)
            self.info = DataInfo(kind="image", shape=self.decoder.shape,
                                 num_classes=self.manifest.num_classes if self.decoder.labels else 0)
        self.num_workers = max(1, cfg.data.num_workers)  # 0 workers = the main process is worker 0
        self._positions: dict[int, list[int]] = {}
        """worker -> [batch, epoch, block, offset] of its last consumed batch."""
        self._skipped: dict[int, list[int]] = {}
        """worker -> [samples, shards] skipped this session."""
        self._skipped_before = [0, 0]
        self._consumed = 0
        self._restored: Optional[dict] = None

    def _load_vocab(self):
        """data.shards.vocab, else the vocab.json `data pack` wrote beside a local manifest, else None."""
        from ganscale.data.shards.manifest import is_local, local_path
        from ganscale.text.vocab import Vocab

        if self.scfg.vocab:
            return Vocab.load(self.scfg.vocab)
        url = self.shards.manifest_url
        if self.manifest.vocab and url and is_local(url):
            return Vocab.load(os.path.join(os.path.dirname(local_path(url)), self.manifest.vocab))
        return None

    @property
    def oracle_path(self) -> str:
        """The model that generated token shards (`oracle.safetensors` beside a local manifest), or
        "" when the shards name none; whoever scores samples against it loads it."""
        from ganscale.data.shards.manifest import is_local, local_path

        url = self.shards.manifest_url
        if not (self.manifest.oracle and url and is_local(url)):
            return ""
        return os.path.join(os.path.dirname(local_path(url)), self.manifest.oracle)

    # ------------------------------------------------------------ streams
    @property
    def batch(self) -> int:
        """Samples per dataloader batch: n_disc per-rank batches."""
        return self.cfg.data.batch_size * self.batches_per_iter

    def epoch_batches(self, world_size: int) -> int:
        return epoch_batches(self.scfg.epoch_samples or self.shards.num_samples, world_size, self.batch)

    def plan(self, rank: int, world_size: int, resampled: Optional[bool] = None, max_epochs: int = 0,
             batch: Optional[int] = None) -> StreamPlan:
        return StreamPlan(
            urls=self.shards.urls, sizes=self.shards.sizes, seed=self.cfg.seed, rank=rank, world_size=world_size,
            batch=batch or self.batch, epoch_batches=self.epoch_batches(world_size),
            resampled=self.scfg.resampled if resampled is None else resampled,
            shuffle_buffer=self.scfg.shuffle_buffer, max_epochs=max_epochs)

    def _restored_positions(self, rank: int, world_size: int) -> dict[int, SlotPosition]:
        s = self._restored
        if not s:
            return {}
        same = (s.get("world_size"), s.get("num_workers"), s.get("epoch_batches")) == \
               (world_size, self.num_workers, self.epoch_batches(world_size))
        if not same:
            import warnings

            warnings.warn(f"data stream: the checkpoint was written with world_size={s.get('world_size')}, "
                          f"num_workers={s.get('num_workers')}, epoch_batches={s.get('epoch_batches')}; now "
                          f"{world_size}, {self.num_workers}, {self.epoch_batches(world_size)}. The stream continues "
                          f"at batch {self._start_batch(rank)} but cannot replay the old order exactly.")
            return {}
        rows = s["positions"][rank]
        return {w: SlotPosition(*row) for w, row in enumerate(rows) if row[0] >= 0}

    def _start_batch(self, rank: int) -> int:
        per_rank = (self._restored or {}).get("batches_consumed_per_rank", [])
        return int(per_rank[rank]) if rank < len(per_rank) else self.start_batch

    def train_stream(self, rank: Optional[int] = None, world_size: Optional[int] = None) -> ShardStream:
        rank = self.rank if rank is None else rank
        world_size = self.world_size if world_size is None else world_size
        return ShardStream(self.plan(rank, world_size), self.decoder, self._start_batch(rank),
                           self._restored_positions(rank, world_size))

    def make_loader(self, dataset, num_workers: Optional[int] = None) -> DataLoader:
        nw = self.cfg.data.num_workers if num_workers is None else num_workers
        kw = {}
        if nw > 0:
            kw = dict(worker_init_fn=worker_init, persistent_workers=True, prefetch_factor=self.scfg.prefetch_factor,
                      multiprocessing_context=self.scfg.start_method)
        pin = self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        return DataLoader(dataset, batch_size=None, num_workers=nw, pin_memory=pin, **kw)

    def iteration_loader(self) -> DataLoader:
        self._consumed = self._start_batch(self.rank)
        if self._restored:
            rows = self._restored.get("skipped", [])
            self._skipped_before = list(rows[self.rank]) if self.rank < len(rows) else [0, 0]
        return self.make_loader(self.train_stream())

    # ------------------------------------------------------------ batch hooks (per iteration, GANDataModule)
    def before_transfer(self, batch: dict) -> dict:
        """Record the stream position of the batch being consumed; drop the bookkeeping entries."""
        pos = batch.pop(POS_KEY, None)
        stats = batch.pop(STATS_KEY, None)
        if pos is not None:
            w, rest = int(pos[0]), [int(v) for v in pos[1:]]
            self._positions[w] = rest
            self._consumed = rest[0] + 1
        if stats is not None:
            self._skipped[int(pos[0]) if pos is not None else 0] = [int(v) for v in stats]
        return batch

    def after_transfer(self, batch: dict) -> dict:
        if batch["x"].dtype == torch.uint8:
            batch["x"] = to_unit_range(batch["x"])  # on the device: 4x less to copy than float
        return batch

    # ------------------------------------------------------------ state (exact resume)
    def skipped(self) -> list[int]:
        """[samples, shards] skipped on this rank, including before the last resume."""
        cur = [sum(v[i] for v in self._skipped.values()) for i in range(2)]
        return [self._skipped_before[0] + cur[0], self._skipped_before[1] + cur[1]]

    def _local_state(self) -> torch.Tensor:
        rows = [self._positions.get(w, [-1, -1, -1, -1]) for w in range(self.num_workers)]
        return torch.tensor([self._consumed, *self.skipped(), *(v for r in rows for v in r)], dtype=torch.long)

    def state_dict(self) -> dict:
        """The stream position of every rank and worker. Collective under DDP/DeepSpeed: every rank
        calls it (Lightning's save_checkpoint runs dump_checkpoint on every rank)."""
        local = self._local_state()
        d = process_group()
        if d is not None and d.get_world_size() > 1:
            nccl = d.get_backend() == "nccl"  # NCCL only moves CUDA tensors
            device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
            parts = [torch.empty_like(local, device=device) for _ in range(d.get_world_size())]
            d.all_gather(parts, local.to(device))
            rows = [p.cpu() for p in parts]
        else:
            rows = [local]
        world_size = len(rows)
        return {
            "batches_consumed": int(rows[0][0]),
            "batches_consumed_per_rank": [int(r[0]) for r in rows],
            "world_size": world_size,
            "num_workers": self.num_workers,
            "epoch_batches": self.epoch_batches(world_size),
            "skipped": [r[1:3].tolist() for r in rows],
            "positions": [r[3:].view(self.num_workers, 4).tolist() for r in rows],
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._restored = state if "positions" in state else None
        self._positions, self._skipped = {}, {}
        self._consumed = self.start_batch

    def log_stats(self) -> dict[str, float]:
        """Counters summed over ranks by the trainer's logger."""
        s = self.skipped()
        return {"data/skipped_samples": float(s[0]), "data/skipped_shards": float(s[1])}

    # ------------------------------------------------------------ real images (sample grids, image metrics)
    def real_images(self, num: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        """`num` real images in [-1, 1] (N x C x H x W), centre-cropped, read in shard order: for
        sample grids and for the image metrics (FID/KID/IS compare G against these)."""
        plan = self.plan(rank, world_size, resampled=False, batch=1)
        out = []
        for item in iter_samples(plan, self.decoder.for_eval()):
            out.append(torch.from_numpy(item["x"].copy()).permute(2, 0, 1))
            if len(out) >= num:
                break
        return to_unit_range(torch.stack(out)) if out else torch.empty(0, *self.info.shape)

    def reference_batches(self, batch_size: int):
        """Every sample once in the seeded shard order (no resampling, no random crop/flip), in
        batches: the real side of the image metrics (ganscale.metrics.evaluator)."""
        plan = self.plan(0, 1, resampled=False, batch=1)
        xs, ys = [], []
        for item in iter_samples(plan, self.decoder.for_eval()):
            xs.append(torch.from_numpy(item["x"].copy()).permute(2, 0, 1))
            if "y" in item:
                ys.append(int(item["y"]))
            if len(xs) == batch_size:
                yield self._reference_batch(xs, ys)
                xs, ys = [], []
        if xs:
            yield self._reference_batch(xs, ys)

    @staticmethod
    def _reference_batch(xs: list, ys: list) -> dict:
        out = {"x": to_unit_range(torch.stack(xs))}
        if ys and len(ys) == len(xs):
            out["y"] = torch.tensor(ys, dtype=torch.long)
        return out

    def reference_key(self) -> str:
        """The shards' checksums (or names and sizes) and the decoded shape and eval transforms."""
        import hashlib
        import json

        t = self.scfg.transform
        key = {"shards": [(s.name, s.num_samples, s.sha256 or s.bytes) for s in self.manifest.shards],
               "shape": list(self.info.shape), "resize": t.resize, "crop": t.crop, "crop_size": t.crop_size}
        return "shards:" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def reference_cache_dir(self) -> Optional[str]:
        """<shard folder>/refstats when the shards are local and the folder is writable."""
        from ganscale.data.shards.manifest import is_local, local_path

        url = self.shards.urls[0]
        if not is_local(url):
            return None
        folder = os.path.dirname(os.path.abspath(local_path(url)))
        return os.path.join(folder, "refstats") if os.access(folder, os.W_OK) else None
