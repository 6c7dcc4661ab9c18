"""Shared by the speed benchmarks (overhead.py, gpu_bench.py): `ganscale train`'s own code path
(ganscale.train.run.main) fed from in-memory batches (images, labels, and for text-to-image games
captions and a text encoder file) and timed between two iterations."""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack, contextmanager
from typing import Callable, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


@contextmanager
def patched(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


CAPTIONS_PER_IMAGE = 10
"""CUB's and COCO's captions per image (Reed et al. 2016: 10; COCO: 5)."""


def image_pool(cfg, shape: tuple[int, ...], num_classes: int, n: int = 4,
               text: Optional[tuple[int, int]] = None) -> list[dict]:
    """n random batches of one iteration each (data.batch_size x n_disc images in [-1, 1], labels).
    `text=(vocabulary size, max_len)`: each image also gets CAPTIONS_PER_IMAGE captions of random
    token ids, as a caption shard batch carries them (caption_ids, caption_lengths, caption_counts)."""
    import torch

    g = torch.Generator().manual_seed(0)
    b = cfg.data.batch_size * cfg.gan.n_disc
    pool = []
    for _ in range(n):
        batch = {"x": torch.rand((b, *shape), generator=g) * 2 - 1,
                 "y": torch.randint(max(1, num_classes), (b,), generator=g)}
        if text is not None:
            vocab, max_len, c = text[0], text[1], CAPTIONS_PER_IMAGE
            lengths = torch.randint(1, max_len + 1, (b, c), generator=g)
            ids = torch.randint(2, vocab, (b, c, max_len), generator=g)  # 0 pads, 1 is the unknown word
            ids[torch.arange(max_len).expand(b, c, max_len) >= lengths[..., None]] = 0
            batch.update(caption_ids=ids, caption_lengths=lengths,
                         caption_counts=torch.randint(c // 2, c + 1, (b,), generator=g))
        pool.append(batch)
    return pool


def text_encoder_file(path: str, dim: int, vocab_size: int = 5000, max_len: int = 18) -> str:
    """A text encoder file in `ganscale text train`'s format at CUB's size (a vocabulary of ~5,000
    words, `dim`-d sentences) with seeded random weights: what DF-GAN's step costs does not depend
    on what the encoder learned, and the suite cannot train one in its budget."""
    import torch

    from ganscale.text.config import TextEncoderConfig
    from ganscale.text.pair import EncoderPair, save_encoder
    from ganscale.text.vocab import PAD, UNK, Vocab

    torch.manual_seed(0)
    vocab = Vocab([PAD, UNK, *(f"w{i}" for i in range(vocab_size - 2))])
    save_encoder(EncoderPair(TextEncoderConfig(dim=dim, max_len=max_len), vocab), path)
    return path


def memory_datamodule(cfg, shape: tuple[int, ...], num_classes: int, text: Optional[tuple[int, int]] = None):
    """A GANDataModule cycling through image_pool: the data pipeline stays out of the timing
    (benchmarks/data_loader.py measures that). Evaluation is the metrics callback's, not the data
    module's (timed_run(evaluate=False) leaves it out). `text`: captioned batches (see image_pool)."""
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    from ganscale.data.base import DataInfo, GANDataModule

    pool = image_pool(cfg, shape, num_classes, text=text)

    class Cycle(IterableDataset):
        def __iter__(self):
            i = 0
            while True:
                yield pool[i % len(pool)]
                i += 1

    class Memory(GANDataModule):
        def __init__(self):
            super().__init__(cfg)
            self.info = DataInfo("image", tuple(shape), num_classes)

        def iteration_loader(self):
            return DataLoader(Cycle(), batch_size=None, pin_memory=torch.cuda.is_available())

    return Memory()


class Clock:
    """Wall and process CPU time between iterations marks[0] and marks[1] (tick(i) at each start).
    On a shared CPU the process CPU time is the fair measure of one process's work: it does not
    count the time slices other processes take (with one intra-op thread it is the work done)."""

    def __init__(self, marks: tuple[int, int], sync: Callable[[], None]):
        self.marks, self.sync = marks, sync
        self._wall, self._cpu = [0.0, 0.0], [0.0, 0.0]

    def tick(self, iteration: int) -> None:
        if iteration in self.marks:
            self.sync()
            i = self.marks.index(iteration)
            self._wall[i], self._cpu[i] = time.perf_counter(), time.process_time()

    @property
    def wall(self) -> float:
        return self._wall[1] - self._wall[0]

    @property
    def cpu(self) -> float:
        return self._cpu[1] - self._cpu[0]


def timed_run(cfg, marks: tuple[int, int], sync: Callable[[], None], datamodule=None,
              patches: Optional[list] = None, evaluate: bool = True):
    """Run `ganscale train` in this process (ganscale.train.run.main) and return (Clock of the window
    from the start of iteration marks[0] to the start of marks[1], the Run). `datamodule`: replaces
    the config's. `evaluate=False` leaves out the evaluation callbacks (a run on in-memory batches
    has no data of its own to evaluate against: a text run's evaluation reads captions from shards)."""
    import lightning as L

    from ganscale.metrics.callback import EvalAndPlot
    from ganscale.train import run as run_mod

    clock = Clock(marks, sync)

    class ClockCallback(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            clock.tick(pl_module.iteration)

    def callbacks(c, d, game=None):
        kept = [cb for cb in build(c, d, game) if evaluate or not isinstance(cb, EvalAndPlot)]
        return [*kept, ClockCallback()]

    build = run_mod.build_callbacks
    with ExitStack() as stack:
        stack.enter_context(patched(run_mod, "build_callbacks", callbacks))
        if datamodule is not None:
            stack.enter_context(patched(run_mod, "build_datamodule", lambda c: datamodule))
        for p in patches or []:
            stack.enter_context(p)
        run = run_mod.main(cfg)
    return clock, run
