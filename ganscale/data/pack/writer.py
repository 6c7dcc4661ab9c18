"""Write a `Source` into tar shards with webdataset's ShardWriter, plus manifest.json.

    ganscale data pack ../shared/data/mnist /data/mnist-shards
    ganscale data pack /data/imagenet/train /data/in64 --resize 72 --square --image-format jpg --workers 8

Samples are shuffled (seeded) before writing so every shard mixes classes: training reads a few
shards at a time, and class-sorted shards would give class-sorted batches. Unreadable inputs are
skipped, counted and named; the manifest is written last, so an interrupted pack leaves a folder
that training refuses.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import multiprocessing
import os
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from ganscale.data.pack.encode import EncodeOptions, Prepared, prepare
from ganscale.data.pack.sources import Source
from ganscale.data.shards.manifest import MANIFEST_NAME, VOCAB_NAME, Manifest, ShardEntry
from ganscale.errors import UserError
from ganscale.text.vocab import Vocab

MAX_EXAMPLES = 20
"""Skipped inputs named in the manifest (all of them are counted)."""


@dataclass(frozen=True)
class PackOptions:
    encode: EncodeOptions = EncodeOptions()
    max_samples: int = 5000
    """Samples per shard at most (ShardWriter maxcount)."""
    max_bytes: int = 512 * 1024**2
    """Bytes per shard: a new shard starts once a shard reaches this size (ShardWriter maxsize)."""
    prefix: str = "data"
    """Shard names: <prefix>-000000.tar, ..."""
    shuffle: bool = True
    """Shuffle the sample order (seeded) so shards mix classes."""
    seed: int = 0
    limit: int = 0
    """Pack only the first `limit` samples (after the shuffle); 0 = all."""
    workers: int = 1
    """Processes that decode / resize / encode."""
    overwrite: bool = False
    """Replace shards and manifest already in the output folder."""


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def prepare_out(out_dir: str, opts: PackOptions) -> None:
    """Create `out_dir`; refuse one that holds shards already unless opts.overwrite (then remove them)."""
    os.makedirs(out_dir, exist_ok=True)
    old = glob.glob(os.path.join(out_dir, f"{opts.prefix}-*.tar")) + glob.glob(os.path.join(out_dir, MANIFEST_NAME)) \
        + glob.glob(os.path.join(out_dir, VOCAB_NAME))
    if old and not opts.overwrite:
        raise UserError(f"{out_dir} already holds shards ({os.path.basename(sorted(old)[0])}, ...); "
                        "pick an empty folder or pass --overwrite")
    for f in old:
        os.remove(f)


def _prepared(source: Source, order: np.ndarray, opts: PackOptions) -> Iterator[Prepared]:
    width = max(6, len(str(len(order))))
    jobs = ((n, f"{n:0{width}d}", source.items[int(i)]) for n, i in enumerate(order))
    fn = functools.partial(prepare, opts=opts.encode, classes=tuple(source.classes))
    if opts.workers <= 1:
        yield from map(fn, jobs)
        return
    with multiprocessing.get_context().Pool(opts.workers) as pool:
        yield from pool.imap(fn, jobs, chunksize=16)  # ordered: shards do not depend on timing


def shard_writer(out_dir: str, opts: PackOptions, entries: list[ShardEntry]):
    """webdataset's ShardWriter for <out_dir>/<prefix>-NNNNNN.tar; every finished shard is appended
    to `entries` with its sample count, size and sha256 (the manifest's shard list)."""
    import webdataset as wds

    def on_shard_done(fname: str) -> None:
        entries.append(ShardEntry(os.path.basename(fname), writer.count, os.path.getsize(fname), sha256_file(fname)))

    pattern = os.path.join(out_dir, f"{opts.prefix}-%06d.tar")
    # An int mtime gives the same bytes on every run, and no 1 KB pax header per file (webdataset's
    # default float time.time() adds one, doubling the size of small samples).
    writer = wds.ShardWriter(pattern, maxcount=opts.max_samples, maxsize=opts.max_bytes,
                             post=on_shard_done, verbose=0, mtime=0)
    return writer


def pack(source: Source, out_dir: str, opts: PackOptions = PackOptions(),
         log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> Manifest:
    if opts.max_samples < 1 or opts.max_bytes < 1:
        raise UserError("--max-samples and --max-bytes must be >= 1")
    prepare_out(out_dir, opts)
    n = len(source.items)
    order = np.random.default_rng(opts.seed).permutation(n) if opts.shuffle else np.arange(n)
    if opts.limit:
        order = order[: opts.limit]
    entries: list[ShardEntry] = []
    skipped = list(source.problems)
    for p in source.problems[:10]:
        log(f"skipped: {p}")
    modes, exts, emb_dims, fields = set(), set(), set(), set()
    max_captions = 0
    first_size, first_source, num_mixed, mixed_example = None, None, 0, ""

    writer = shard_writer(out_dir, opts, entries)
    written = 0
    try:
        for p in _progress(_prepared(source, order, opts), len(order)):
            if p.error:
                if len(skipped) - len(source.problems) < 10:
                    log(f"skipped: {p.error}")
                skipped.append(p.error)
                continue
            writer.write(p.sample)
            written += 1
            fields.update(k for k in p.sample if not k.startswith("__"))
            max_captions = max(max_captions, len(p.captions))
            modes.add(p.mode)
            exts.add(p.ext)
            emb_dims.add(p.emb_dim)
            if first_size is None:
                first_size, first_source = p.size, p.source
            elif p.size != first_size:
                num_mixed += 1
                mixed_example = mixed_example or f"{p.source} is {p.size[0]}x{p.size[1]}"
    finally:
        writer.close()
    if written == 0:
        for e in entries:
            os.remove(os.path.join(out_dir, e.name))
        first = skipped[0] if skipped else "?"
        raise UserError(f"nothing packed: all {len(skipped)} inputs were skipped (first: {first})")
    for note in source.notes:
        log(f"warning: {note}")
    if len(emb_dims - {0}) > 1 or (0 in emb_dims and len(emb_dims) > 1):
        log(f"warning: text embeddings are missing or of different widths across samples ({sorted(emb_dims)}); "
            "training yields text_emb only where present")
    if num_mixed:
        log(f"warning: mixed sizes: {num_mixed} images differ from {first_source} ({first_size[0]}x{first_size[1]}), "
            f"e.g. {mixed_example}; training will need data.shards.transform.crop (or pack with --resize N --square)")
    manifest = Manifest(
        num_samples=written,
        shards=[e for e in entries if e.num_samples > 0],
        image_format=exts.pop() if len(exts) == 1 else "mixed",
        mode="L" if modes == {"L"} else "RGB",
        width=0 if num_mixed else first_size[0],
        height=0 if num_mixed else first_size[1],
        classes=list(source.classes),
        captions=any(it.captions for it in source.items),
        max_captions=max_captions,
        fields=sorted(fields),
        text_emb_dim=max(emb_dims),
        num_skipped=len(skipped),
        skipped_examples=skipped[:MAX_EXAMPLES],
        source={**source.description, "encode": vars(opts.encode), "max_samples": opts.max_samples,
                "max_bytes": opts.max_bytes, "shuffle": opts.shuffle, "seed": opts.seed},
    )
    for e in entries:  # an empty trailing shard cannot occur, but never list one
        if e.num_samples == 0:
            os.remove(os.path.join(out_dir, e.name))
    if manifest.captions:
        # Words are counted over the TRAIN captions (also when packing another split), so every
        # split of a dataset maps words to the same ids.
        caps = source.vocab_captions if source.vocab_captions is not None else \
            [c for it in source.items for c in it.captions]
        Vocab.build(caps).save(os.path.join(out_dir, VOCAB_NAME))
        manifest.vocab = VOCAB_NAME
    manifest.save(os.path.join(out_dir, MANIFEST_NAME))
    return manifest


def _progress(it: Iterable, total: int) -> Iterable:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return it
    return tqdm(it, total=total, desc="pack", unit="img", disable=not sys.stderr.isatty(), mininterval=1.0)
