"""NLL under the oracle: the SeqGAN metric (Yu et al. 2017) for generators of token sequences.

    ganscale train configs/sequences/seqgan.yaml      # every trainer.eval_every: metrics.jsonl oracle_nll
    ganscale eval runs/<run>                          # the same on eval.num_samples (10k) samples of G_ema

oracle_nll = -(1 / (N T)) sum_n sum_t log p_oracle(x_nt | x_n<t) over N sequences x_n of length T
drawn from G, in nats per token: how likely the oracle finds G's samples (it rewards precision,
not coverage: a G that emits only the oracle's most likely sequence scores best). The oracle is the
model the shards were sampled from (`oracle.safetensors` beside them, ganscale.data.synth.oracle).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ganscale.errors import UserError


def oracle_nll(oracle, tokens: Tensor) -> float:
    """Mean NLL per token (nats) of `tokens` [N, T] under `oracle`; UserError when they do not fit it."""
    spec = oracle.spec
    if tokens.dim() != 2 or tokens.shape[1] != spec.length:
        raise UserError(f"samples of shape {tuple(tokens.shape)} do not fit the oracle's sequences of length "
                        f"{spec.length}; train on shards of this oracle")
    tokens = tokens.long()
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= spec.vocab):
        raise UserError(f"sample token ids outside the oracle's vocabulary 0..{spec.vocab - 1}")
    return oracle.nll(tokens)


class OracleEvaluation:
    """The evaluation of token data whose shards name an oracle (metrics/evaluation.py)."""

    def __init__(self, oracle_path: str, num_samples: int):
        self.path, self.num_samples = oracle_path, num_samples
        self.oracle = None

    def prepare(self) -> None:
        from ganscale.data.synth.oracle import load_oracle

        if self.oracle is None:
            self.oracle = load_oracle(self.path)  # UserError when missing or corrupt, before training

    def evaluate(self, sample_fn) -> dict:
        self.prepare()
        return {"oracle_nll": oracle_nll(self.oracle, sample_fn(self.num_samples))}

    def plot(self, sample_fn, path: str, title: Optional[str] = None) -> Optional[str]:
        return None  # token ids have no figure
