"""The oracle of the SeqGAN protocol (Yu et al. 2017): a randomly initialised LSTM language model
whose samples are the "real" sequences and whose likelihood scores a generator's sequences.

    oracle = make_oracle(seed=0, vocab=5000, length=20)    # weights N(0, 1), as in SeqGAN
    save_oracle(oracle, "oracle.safetensors")               # safetensors: weights + config, no code
    oracle = load_oracle("oracle.safetensors")
    tokens = oracle.sample(10_000, generator)               # [N, length] int64 in [0, vocab)
    oracle.nll(tokens)                                       # the metric: mean NLL per token (nats)

It is the data-generating process of `ganscale data synth oracle-sequences OUT` (which saves it
beside the token shards, oracle_sequences.py) and the judge of ganscale.metrics.oracle (NLL under
the oracle of a generator's samples).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganscale.errors import UserError

FORMAT = "ganscale-oracle-lstm-1"


@dataclass
class OracleSpec:
    vocab: int = 5000
    """Tokens 0..vocab-1; the start token is an extra embedding row (index vocab)."""
    length: int = 20
    """Tokens per sequence."""
    emb: int = 32
    """Embedding size (SeqGAN: 32)."""
    hidden: int = 32
    """LSTM hidden size (SeqGAN: 32)."""


class OracleLSTM(nn.Module):
    def __init__(self, spec: OracleSpec):
        super().__init__()
        self.spec = spec
        self.embed = nn.Embedding(spec.vocab + 1, spec.emb)
        self.lstm = nn.LSTM(spec.emb, spec.hidden, batch_first=True)
        self.out = nn.Linear(spec.hidden, spec.vocab)

    def logits(self, tokens: Tensor) -> Tensor:
        """Next-token logits [N, T, vocab] for every prefix of `tokens` [N, T] (teacher forcing)."""
        start = torch.full((tokens.shape[0], 1), self.spec.vocab, dtype=torch.long, device=tokens.device)
        h, _ = self.lstm(self.embed(torch.cat([start, tokens[:, :-1]], 1)))
        return self.out(h)

    def nll(self, tokens: Tensor, batch: int = 1000) -> float:
        """Mean negative log-likelihood per token (nats) of `tokens` [N, T] under this model."""
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(tokens), batch):
                t = tokens[i:i + batch]
                total += float(F.cross_entropy(self.logits(t).flatten(0, 1), t.flatten(), reduction="sum"))
        return total / tokens.numel()

    @torch.no_grad()
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """n sequences [n, length], each token drawn from the model's next-token distribution."""
        x = torch.full((n,), self.spec.vocab, dtype=torch.long)
        state, out = None, []
        for _ in range(self.spec.length):
            h, state = self.lstm(self.embed(x)[:, None], state)
            x = torch.multinomial(F.softmax(self.out(h[:, 0]), -1), 1, generator=generator)[:, 0]
            out.append(x)
        return torch.stack(out, 1)


def make_oracle(seed: int = 0, **spec) -> OracleLSTM:
    """A fresh oracle with every weight drawn from N(0, 1) by a generator seeded with `seed`."""
    model = OracleLSTM(OracleSpec(**spec))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model.eval().requires_grad_(False)


def save_oracle(model: OracleLSTM, path: str) -> None:
    from safetensors.torch import save_file

    from ganscale.utils.files import atomic_path

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={"format": FORMAT, "spec": json.dumps(dataclasses.asdict(model.spec))})


def load_oracle(path: str) -> OracleLSTM:
    """The oracle saved by save_oracle (nothing is unpickled); UserError if missing or not one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    if not os.path.isfile(path):
        raise UserError(f"oracle {path} does not exist; write one with `ganscale data synth oracle-sequences OUT`")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable safetensors file ({e}); write the oracle again") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a ganscale oracle (format {meta.get('format')!r}, expected {FORMAT!r})")
    try:
        model = OracleLSTM(OracleSpec(**json.loads(meta["spec"])))
        model.load_state_dict(tensors)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise UserError(f"{path}: spec and weights do not fit together ({str(e)[:300]}); write the oracle again") \
            from None
    return model.eval().requires_grad_(False)
