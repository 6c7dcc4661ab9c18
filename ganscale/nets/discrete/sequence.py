"""G and D over token sequences (game.name=seqgan, ganscale/games/sequence.py).

    G = SequenceGenerator(vocab=5000, length=20, emb=32, hidden=32)   # the oracle's size (SeqGAN)
    tokens = G(G.sample_z(n))                 # int64 [n, length]: one uniform per token fixes the draw
    G.log_probs(tokens)                       # [n, length] log p(x_t | x_<t), teacher forced (MLE, REINFORCE)
    G.relaxed(gumbel, tau, hard)              # [n, length, vocab] Gumbel-softmax one-hots fed back in
    D = SequenceDiscriminator(vocab, length)  # D(tokens [N, L] or one-hots [N, L, V]) -> logits [N]

G is an LSTM language model: the start token (id `vocab`) then each token's embedding in, the
next token's logits out. Its latent is the sampling noise: u ~ U(0, 1) per position, token t =
the inverse CDF of p(. | x_<t) at u_t (an exact categorical draw from one uniform, instead of
`vocab` Gumbel variables per token), so the engine's seeded draws fix every sample.

D is SeqGAN's CNN classifier made smaller (Yu et al. 2017 use windows 1..10, 15, 20 with 100-200
filters each and dropout 0.75): embedding, one convolution per window in `windows` with
`channels` filters, max over time, a highway layer, a linear logit; no dropout (dropout's draws
would differ between N ranks and one process). It reads hard tokens through its embedding and
soft one-hots (the Gumbel-softmax estimators) as the same embedding's weighted mean.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganscale.nets.base import Discriminator, Generator


class SequenceGenerator(Generator):
    def __init__(self, vocab: int, length: int, emb: int = 32, hidden: int = 32):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.z_dim = length
        self.embed = nn.Embedding(vocab + 1, emb)  # row `vocab` is the start token
        self.lstm = nn.LSTM(emb, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def sample_z(self, n: int, generator: Optional[torch.Generator] = None, device=None,
                 truncation: Optional[float] = None) -> Tensor:
        """One uniform per position (truncation does not apply to token draws)."""
        return torch.rand(n, self.length, generator=generator, device=device)

    def _start(self, n: int, device) -> Tensor:
        return torch.full((n,), self.vocab, dtype=torch.long, device=device)

    def logits(self, tokens: Tensor) -> Tensor:
        """Next-token logits [N, T, vocab] for every prefix of `tokens` [N, T] (teacher forcing)."""
        inputs = torch.cat([self._start(len(tokens), tokens.device)[:, None], tokens[:, :-1]], 1)
        h, _ = self.lstm(self.embed(inputs))
        return self.out(h)

    def log_probs(self, tokens: Tensor) -> Tensor:
        """log p(x_t | x_<t) of every token, [N, T]."""
        return torch.log_softmax(self.logits(tokens), -1).gather(-1, tokens[..., None])[..., 0]

    @staticmethod
    def inverse_cdf(logits: Tensor, u: Tensor) -> Tensor:
        """The categorical draw of softmax(logits) [N, V] at uniforms u [N]: the first id whose
        cumulative probability exceeds u."""
        cdf = torch.softmax(logits.float(), -1).cumsum(-1)
        index = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1).contiguous())[:, 0]
        return index.clamp_(max=logits.shape[-1] - 1)

    def continue_from(self, prefix: Tensor, u: Tensor) -> Tensor:
        """Complete `prefix` [N, t] to full sequences [N, length] with the uniforms u [N, length - t]
        of the remaining positions (the Monte Carlo rollouts of SeqGAN's per-token rewards)."""
        n, t = prefix.shape
        state, x = None, self._start(n, u.device)
        if t:
            inputs = torch.cat([x[:, None], prefix[:, :-1]], 1)
            _, state = self.lstm(self.embed(inputs))
            x = prefix[:, -1]
        out = [prefix]
        for j in range(self.length - t):
            h, state = self.lstm(self.embed(x)[:, None], state)
            x = self.inverse_cdf(self.out(h[:, 0]), u[:, j])
            out.append(x[:, None])
        return torch.cat(out, 1)

    def forward(self, z: Tensor, y=None) -> Tensor:
        """Token sequences int64 [N, length] for the uniforms z [N, length] of `sample_z`."""
        return self.continue_from(torch.empty(len(z), 0, dtype=torch.long, device=z.device), z)

    def relaxed(self, gumbel: Tensor, tau: float, hard: bool) -> Tensor:
        """Gumbel-softmax sequences [N, length, vocab] from Gumbel noise [N, length, vocab]: each
        position's relaxed one-hot softmax((logits + g) / tau) (straight-through hard one-hot when
        `hard`) is also the next input, as the embedding's weighted mean, so D's gradient reaches
        every earlier step. argmax(logits + g) is an exact categorical draw."""
        from ganscale.nets.discrete.estimators import gumbel_softmax

        n = gumbel.shape[0]
        state, inp = None, self.embed(self._start(n, gumbel.device))
        out = []
        for t in range(self.length):
            h, state = self.lstm(inp[:, None], state)
            y = gumbel_softmax(self.out(h[:, 0]), tau, gumbel[:, t], hard=hard)
            out.append(y)
            inp = y @ self.embed.weight[:self.vocab]
        return torch.stack(out, 1)


class Highway(nn.Module):
    """y = T(x) * relu(H(x)) + (1 - T(x)) * x with a sigmoid gate T (Srivastava et al. 2015; SeqGAN's D)."""

    def __init__(self, width: int):
        super().__init__()
        self.h, self.t = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.t(x))
        return gate * F.relu(self.h(x)) + (1 - gate) * x


class SequenceDiscriminator(Discriminator):
    def __init__(self, vocab: int, length: int, emb: int = 64, windows: Sequence[int] = (2, 3, 4, 5),
                 channels: int = 32):
        super().__init__()
        self.vocab = vocab
        self.embed = nn.Embedding(vocab, emb)
        self.convs = nn.ModuleList(nn.Conv1d(emb, channels, w) for w in windows if w <= length)
        if not self.convs:
            raise ValueError(f"no window in {list(windows)} fits sequences of length {length}")
        width = channels * len(self.convs)
        self.highway = Highway(width)
        self.head = nn.Linear(width, 1)

    def forward(self, x: Tensor, y=None, return_features: bool = False):
        """Logits [N] of token ids [N, L] or (relaxed) one-hots [N, L, vocab]."""
        e = self.embed(x) if x.dtype == torch.long else x @ self.embed.weight
        e = e.transpose(1, 2)  # [N, emb, L]: convolutions over time
        h = torch.cat([F.relu(conv(e)).amax(-1) for conv in self.convs], 1)
        features = self.highway(h)
        logits = self.head(features)[:, 0]
        return (logits, features) if return_features else logits
