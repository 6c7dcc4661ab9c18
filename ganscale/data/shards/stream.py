"""The deterministic shard stream behind `data.kind=shards`.

Batches and slots. Every rank yields exactly `epoch_batches` batches per epoch, whatever the shard
sizes, so uneven shards can never leave one rank waiting in a collective. With W DataLoader workers
(W=1 without workers) batch i of a rank belongs to *slot* i % W: the slot fixes which shards and
seeds make the batch, and the DataLoader's round robin has one worker make every W-th batch.

Who reads what. For epoch e, slot s of rank r of R reads a sequence of shards:
  resampled (training default)  shards drawn with replacement, seeded by (seed, e, r, s)
  split     (resampled=false)   a permutation of all shards seeded by (seed, e), shared by every
                                rank; slot r*W+s takes every (R*W)-th shard, so slots are disjoint;
                                training tops a short slot up with resampled shards
Shards are read whole into *blocks* of about `shuffle_buffer` samples; each block is permuted with
a seed of (seed, e, r, s, block). A slot's position is therefore just (epoch, block, offset).
Random crops, flips and caption choices use a generator seeded by (seed, r, i).

Exact resume. Each batch carries its slot position; the data module keeps the position of the
last *consumed* batch of every slot and saves it in the checkpoint. A rebuilt stream starts each
slot at its saved (epoch, block, offset): it re-reads one block, never the epoch.

Bad data. A sample that does not decode or lacks a key is skipped; a shard that cannot be opened
or is truncated contributes the samples read before the error. Both are counted, warned about
(rate-limited) and reported with every batch, so the trainer can log the totals.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from itertools import islice
from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ganscale.data.shards.decode import CorruptSample, Decoder
from ganscale.errors import UserError

POS_KEY = "__stream_pos__"
"""Batch entry: int64 [slot, batch index, epoch, block, offset] after this batch."""
STATS_KEY = "__stream_stats__"
"""Batch entry: int64 [skipped samples, skipped shards] of this slot so far (this session)."""
TAG_RESAMPLE, TAG_PERM, TAG_BLOCK, TAG_BATCH = 11, 12, 13, 14
MAX_BAD_SAMPLES_IN_A_ROW = 10_000
"""Undecodable samples in a row before giving up: the data is unusable, not merely dirty."""
MIN_EMPTY_SHARDS_IN_A_ROW = 100
"""Shards in a row without a sample (and at least 4x the number of shards) before giving up."""


class CorruptDataWarning(UserWarning):
    """A sample or shard was skipped."""


def make_rng(*key: int) -> np.random.Generator:
    """A generator for a tuple of integers: every tuple its own independent stream."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(k) % 2**64 for k in key])))


class DataStats:
    """Skip counters of one slot, with rate-limited warnings (1..10, then every power of ten)."""

    def __init__(self, rank: int, slot: int):
        self.rank, self.slot = rank, slot
        self.samples = self.shards = 0
        self.bad_in_a_row = 0

    def _warn(self, n: int, msg: str) -> None:
        if n <= 10 or math.log10(n).is_integer():
            warnings.warn(f"ganscale data (rank {self.rank}, slot {self.slot}): {msg} "
                          f"[{n} skipped so far{'; further warnings are thinned' if n == 10 else ''}]",
                          CorruptDataWarning, stacklevel=3)

    def skip_sample(self, sample: dict, reason: str) -> None:
        self.samples += 1
        self.bad_in_a_row += 1
        self._warn(self.samples, f"skipped sample {sample.get('__key__')!r} of {sample.get('__url__')}: {reason}")
        if self.bad_in_a_row >= MAX_BAD_SAMPLES_IN_A_ROW:
            raise UserError(f"rank {self.rank} slot {self.slot}: the last {self.bad_in_a_row} samples read were "
                            f"all unusable (last: {reason}); check the shards with `ganscale data verify`")

    def skip_shard(self, url: str, reason: str, kept: int) -> None:
        self.shards += 1
        self._warn(self.shards, f"shard {url} unreadable ({reason}); kept the {kept} samples read before the error")

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([self.samples, self.shards], dtype=torch.long)


@dataclass(frozen=True)
class StreamPlan:
    """Everything a worker needs to make its batches (picklable, so spawn workers get it too)."""

    urls: tuple[str, ...]
    sizes: tuple[int, ...]
    """Samples per shard, from the manifest (sets the block size; reading never trusts it)."""
    seed: int
    rank: int
    world_size: int
    batch: int
    """Samples per yielded batch (n_disc x per-rank batch)."""
    epoch_batches: int
    """Batches per rank per epoch, the same on every rank."""
    resampled: bool = True
    shuffle_buffer: int = 2000
    max_epochs: int = 0
    """Stop after this many epochs (0 = endless, as in training)."""

    @property
    def shards_per_block(self) -> int:
        if self.shuffle_buffer <= 0:
            return 1
        mean = max(1.0, sum(self.sizes) / len(self.sizes))
        return max(1, math.ceil(self.shuffle_buffer / mean))

    @property
    def shuffle(self) -> bool:
        return self.shuffle_buffer > 0


def epoch_batches(num_samples: int, world_size: int, batch: int) -> int:
    """Batches per rank per epoch: the epoch's samples split over ranks, at least one."""
    return max(1, num_samples // (world_size * batch))


def shard_blocks(plan: StreamPlan, epoch: int, slot: int, num_slots_per_rank: int,
                 finite: bool = False) -> Iterator[list[int]]:
    """The blocks (lists of shard indices) slot `slot` of plan.rank reads in `epoch`; see the
    module docstring. In split mode the slot's own shards never share a block with top-up shards,
    so a slot whose share fills its quota reads exactly its share."""
    n, k = len(plan.urls), plan.shards_per_block
    if not plan.resampled:
        perm = make_rng(plan.seed, epoch, TAG_PERM).permutation(n) if plan.shuffle else np.arange(n)
        own = [int(s) for s in perm[plan.rank * num_slots_per_rank + slot::plan.world_size * num_slots_per_rank]]
        for j in range(0, len(own), k):
            yield own[j:j + k]
        if finite:
            return
    g = make_rng(plan.seed, epoch, plan.rank, slot, TAG_RESAMPLE)
    while True:
        yield [int(s) for s in g.integers(n, size=k)]


def read_shard(url: str, stats: DataStats) -> list[dict]:
    """All raw samples of one shard (bytes per key). Errors are counted, never raised."""
    from webdataset.gopen import gopen
    from webdataset.tariterators import group_by_keys, tar_file_expander

    errors: list[Exception] = []

    def handler(exn: Exception) -> bool:
        errors.append(exn)
        return True  # keep going: the samples before the error are good

    samples: list[dict] = []
    try:
        stream = gopen(url, "rb")
    except Exception as e:
        stats.skip_shard(url, f"{type(e).__name__}: {e}", 0)
        return samples
    try:
        files = tar_file_expander([{"url": url, "stream": stream}], handler=handler)
        samples.extend(group_by_keys(files, handler=handler))
    except Exception as e:  # belt and braces: webdataset routes errors to the handler
        errors.append(e)
    finally:
        try:
            stream.close()  # a pipe: command that failed raises here
        except Exception as e:
            errors.append(e)
    if errors:
        e = errors[0]
        stats.skip_shard(url, f"{type(e).__name__}: {str(e)[:200]}", len(samples))
    return samples


class SampleSource:
    """The raw samples of one slot in one epoch, block by block, from position (block, offset)."""

    def __init__(self, plan: StreamPlan, epoch: int, slot: int, num_slots: int, stats: DataStats,
                 block: int = 0, offset: int = 0, finite: bool = False):
        self.plan, self.epoch, self.slot, self.stats = plan, epoch, slot, stats
        self.blocks = shard_blocks(plan, epoch, slot, num_slots, finite)
        for _ in islice(self.blocks, block):  # skip earlier blocks: seeds only, no I/O
            pass
        self.block, self.offset = block, offset
        self.samples: Optional[list[dict]] = None
        self.exhausted = False
        self.empty_shards_in_a_row = 0

    def _load_block(self) -> bool:
        shards = next(self.blocks, None)
        if shards is None:
            return False
        samples: list[dict] = []
        for s in shards:
            got = read_shard(self.plan.urls[s], self.stats)
            self.empty_shards_in_a_row = 0 if got else self.empty_shards_in_a_row + 1
            if self.empty_shards_in_a_row >= max(MIN_EMPTY_SHARDS_IN_A_ROW, 4 * len(self.plan.urls)):
                raise UserError(f"rank {self.plan.rank} slot {self.slot}: the last {self.empty_shards_in_a_row} "
                                "shards read gave no samples; the shards seem unreadable; check data.shards.urls "
                                "and run `ganscale data verify`")
            samples += got
        if self.plan.shuffle and samples:
            perm = make_rng(self.plan.seed, self.epoch, self.plan.rank, self.slot, self.block, TAG_BLOCK)
            samples = [samples[int(i)] for i in perm.permutation(len(samples))]
        self.samples = samples
        return True

    def next(self) -> Optional[dict]:
        """The next raw sample, or None when a finite source is used up."""
        while True:
            if self.samples is not None:
                if self.offset < len(self.samples):
                    self.offset += 1
                    return self.samples[self.offset - 1]
                self.block, self.offset, self.samples = self.block + 1, 0, None
            if self.exhausted or not self._load_block():
                self.exhausted = True
                return None


def collate(items: list[dict]) -> dict:
    """uint8 images N x C x H x W (normalised to [-1, 1] after the transfer to the device) or
    int64 token sequences N x L, the sample keys (for tracing a sample back to its shard), and
    every caption of each image: strings, and with a vocabulary ids [N, C, T], lengths [N, C],
    counts [N] (ganscale.data.captions)."""
    x = torch.from_numpy(np.stack([d["x"] for d in items]))
    out = {"x": x.permute(0, 3, 1, 2).contiguous() if x.dim() == 4 else x, "key": [d["key"] for d in items]}
    if "y" in items[0]:
        out["y"] = torch.tensor([d["y"] for d in items], dtype=torch.long)
    if "text" in items[0]:
        out["text"] = [d["text"] for d in items]
    if "text_emb" in items[0]:
        out["text_emb"] = torch.from_numpy(np.stack([d["text_emb"] for d in items]))
    if "captions" in items[0]:
        out["captions"] = [d["captions"] for d in items]
    for k in ("caption_ids", "caption_lengths", "caption_emb"):
        if k in items[0]:
            out[k] = torch.from_numpy(np.stack([d[k] for d in items]))
    if "caption_count" in items[0]:
        out["caption_counts"] = torch.tensor([d["caption_count"] for d in items], dtype=torch.long)
    return out


def take_decoded(source: SampleSource, decoder: Decoder, n: int, g: np.random.Generator,
                 stats: DataStats) -> list[dict]:
    """Up to n decoded samples; corrupt ones are skipped and counted."""
    items: list[dict] = []
    while len(items) < n:
        raw = source.next()
        if raw is None:
            break
        try:
            item = decoder(raw, g)
            item["key"] = raw["__key__"]
            items.append(item)
            stats.bad_in_a_row = 0
        except CorruptSample as e:
            stats.skip_sample(raw, str(e))
    return items


@dataclass(frozen=True)
class SlotPosition:
    batch: int
    epoch: int
    block: int
    offset: int


class ShardStream(IterableDataset):
    """Endless (or `plan.max_epochs`-long) stream of batches for one rank; see the module docstring."""

    def __init__(self, plan: StreamPlan, decoder: Decoder, start_batch: int = 0,
                 positions: Optional[dict[int, SlotPosition]] = None):
        self.plan, self.decoder = plan, decoder
        self.start_batch = start_batch
        self.positions = positions or {}

    def _source_for(self, epoch: int, i: int, slot: int, nw: int, stats: DataStats) -> SampleSource:
        p = self.positions.get(slot)
        if p is not None and p.epoch == epoch and p.batch + nw == i:
            return SampleSource(self.plan, epoch, slot, nw, stats, p.block, p.offset)
        return SampleSource(self.plan, epoch, slot, nw, stats)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        w, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        plan = self.plan
        # The DataLoader asks its workers in turn starting from worker 0, so worker w makes batches
        # start + w, start + w + nw, ... Batch i always belongs to slot i % nw (its seeds and saved
        # position), so after a resume at an odd batch a worker simply plays another slot.
        i = self.start_batch + w
        slot = i % nw
        stats = DataStats(plan.rank, slot)
        epoch, source = -1, None
        while True:
            e = i // plan.epoch_batches
            if plan.max_epochs and e >= plan.max_epochs:
                return
            if e != epoch:
                epoch, source = e, self._source_for(e, i, slot, nw, stats)
            g = make_rng(plan.seed, plan.rank, i, TAG_BATCH)
            items = take_decoded(source, self.decoder, plan.batch, g, stats)
            if len(items) < plan.batch:  # only a finite split source can run dry
                return
            batch = collate(items)
            batch[POS_KEY] = torch.tensor([slot, i, e, source.block, source.offset], dtype=torch.long)
            batch[STATS_KEY] = stats.as_tensor()
            yield batch
            i += nw


def iter_samples(plan: StreamPlan, decoder: Decoder, slot: int = 0, num_slots: int = 1,
                 epoch: int = 0, stats: Optional[DataStats] = None) -> Iterator[dict]:
    """Every decoded sample of slot (plan.rank, slot) once (split order, no top-up): for
    evaluation, plots and tests. Use a plan with resampled=False."""
    stats = stats or DataStats(plan.rank, slot)
    source = SampleSource(plan, epoch, slot, num_slots, stats, finite=True)
    g = make_rng(plan.seed, plan.rank, epoch, slot, TAG_BATCH)
    while True:
        items = take_decoded(source, decoder, 1, g, stats)
        if not items:
            return
        yield items[0]


def worker_init(worker_id: int) -> None:
    """Make the environment of a DataLoader worker tell the truth. webdataset (and any stage a user
    adds) reads RANK/WORLD_SIZE and WORKER/NUM_WORKERS; a spawned worker has no process group and may
    have no RANK in its environment (DeepSpeed, some launchers), so it would think it is rank 0."""
    info = get_worker_info()
    plan: StreamPlan = info.dataset.plan
    os.environ.update(RANK=str(plan.rank), WORLD_SIZE=str(plan.world_size),
                      WORKER=str(worker_id), NUM_WORKERS=str(info.num_workers))
    torch.set_num_threads(1)  # decoding is per-process; threads would fight the other workers
