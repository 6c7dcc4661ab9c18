"""Sequences of a known oracle (the SeqGAN protocol, Yu et al. 2017) written as token shards.

    ganscale data synth oracle-sequences data/oracle --vocab 5000 --length 20 --num 10000 --seed 0
    ganscale data synth oracle-sequences data/oracle-test --oracle data/oracle/oracle.safetensors --seed 1
    ganscale train configs/sequences/seqgan.yaml data.shards.urls=data/oracle

The oracle is a randomly initialised LSTM (ganscale.data.synth.oracle, weights N(0, 1) from a
generator seeded with --seed), or the one --oracle names. It is saved beside the shards as
`oracle.safetensors` (the manifest names it), and its N samples are written through the same
WebDataset path as images: one `tokens.npy` per sample (a .npy int array [length], read back with
allow_pickle=False), sample n being draw n, shards of --max-samples. The draws use a generator
seeded with --seed + 1, so the same arguments give the same shards, byte for byte, and a second
split of the same oracle takes another --seed. Training reads them as int64 [B, length] batches
(data.kind=shards, DataInfo kind `tokens`); ganscale.metrics.oracle scores a generator against
the oracle.
"""

from __future__ import annotations

import io
import os
from typing import Optional

import numpy as np
import torch

from ganscale.data.pack.writer import PackOptions, prepare_out, shard_writer
from ganscale.data.shards.manifest import MANIFEST_NAME, TOKENS_KEY, Manifest, ShardEntry
from ganscale.data.synth.oracle import load_oracle, make_oracle, save_oracle
from ganscale.errors import UserError

ORACLE_NAME = "oracle.safetensors"
SAMPLE_CHUNK = 1000
"""Sequences drawn per oracle call (a [chunk, vocab] softmax per step, not one of N rows)."""


def token_bytes(tokens: np.ndarray, vocab: int) -> bytes:
    """One sequence as .npy bytes, in the smallest integer type that holds the ids."""
    buf = io.BytesIO()
    np.save(buf, tokens.astype(np.uint16 if vocab <= 2**16 else np.int32), allow_pickle=False)
    return buf.getvalue()


def draw_sequences(oracle, num: int, seed: int) -> torch.Tensor:
    """`num` sequences of the oracle [num, length], drawn in chunks by one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([oracle.sample(min(SAMPLE_CHUNK, num - i), g) for i in range(0, num, SAMPLE_CHUNK)])


def synth_oracle_sequences(out: str, vocab: Optional[int] = None, length: Optional[int] = None, num: int = 10000,
                           seed: int = 0, oracle_path: str = "", max_samples: int = 5000,
                           overwrite: bool = False) -> Manifest:
    """Make (or load) the oracle, save it in `out` and write `num` of its sequences as token shards."""
    if num < 1 or max_samples < 1:
        raise UserError(f"--num {num} and --max-samples {max_samples} must be >= 1")
    if oracle_path:
        oracle = load_oracle(oracle_path)
        spec = oracle.spec
        for name, given in (("vocab", vocab), ("length", length)):
            if given is not None and given != getattr(spec, name):
                raise UserError(f"--{name} {given} differs from the oracle {oracle_path} ({name} "
                                f"{getattr(spec, name)}); drop --{name} to use the oracle's")
    else:
        vocab, length = vocab or 5000, length or 20
        if vocab < 2 or length < 1:
            raise UserError(f"--vocab {vocab} must be >= 2 and --length {length} >= 1")
        oracle = make_oracle(seed, vocab=vocab, length=length)
    opts = PackOptions(max_samples=max_samples, shuffle=False, overwrite=overwrite)
    prepare_out(out, opts)
    target = os.path.join(out, ORACLE_NAME)
    if not (oracle_path and os.path.abspath(oracle_path) == os.path.abspath(target)):
        save_oracle(oracle, target)
    tokens = draw_sequences(oracle, num, seed + 1).numpy()
    entries: list[ShardEntry] = []
    writer = shard_writer(out, opts, entries)
    width = max(6, len(str(num - 1)))
    try:
        for n, row in enumerate(tokens):
            writer.write({"__key__": f"{n:0{width}d}", TOKENS_KEY: token_bytes(row, oracle.spec.vocab)})
    finally:
        writer.close()
    manifest = Manifest(
        num_samples=num, shards=entries, image_format="", mode="", fields=[TOKENS_KEY],
        token_length=oracle.spec.length, token_vocab=oracle.spec.vocab, oracle=ORACLE_NAME,
        source={"kind": "oracle-sequences", "vocab": oracle.spec.vocab, "length": oracle.spec.length,
                "emb": oracle.spec.emb, "hidden": oracle.spec.hidden, "num": num, "seed": seed,
                "oracle": os.path.abspath(oracle_path) if oracle_path else f"made with seed {seed}"})
    manifest.save(os.path.join(out, MANIFEST_NAME))
    return manifest
