"""Adversarial neural cryptography (Abadi & Andersen 2016): Alice and Bob against Eve.

    ganscale train configs/crypto/abadi16.yaml
    ganscale train configs/crypto/abadi16.yaml trainer.max_iters=2000 data.batch_size=512
    python benchmarks/crypto.py --seeds 10          # docs/crypto.md

Alice encrypts an N-bit plaintext P with an N-bit key K into a ciphertext C; Bob decrypts C with
K; Eve reads C alone (networks: ganscale.nets.crypto). Players and phases, in order:

    AB_main      player AB (Alice + Bob, optim.G): Bob's error + (N/2 - Eve's error)^2 / (N/2)^2
    E_main x 2   player E (Eve, optim.D): Eve's error, against a frozen Alice

Errors are L1 in bits, d(P, P') = sum |P - P'| / 2 (ganscale.games.crypto_eval). Eve's error inside
the team's loss is the batch mean squared, a loss non-linear in a batch mean: it is taken over the
global batch (`m.global_mean`), so N ranks train exactly as one process. Every step draws fresh
(P, K) pairs with the engine's seeded draws; there is no data set (data.kind=none).

Evaluation (ganscale.games.crypto_eval.evaluate_crypto, driven by `CryptoEvaluation`): Bob's and Eve's
errors every trainer.eval_every iterations, and at the end the paper's protocol with a fresh Eve
trained against the frozen Alice, in <run>/final_metrics.json.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ganscale.games.base import Game, Phase, Player
from ganscale.games.crypto_eval import bit_errors, evaluate_crypto, random_bits
from ganscale.nets.crypto import build_crypto_nets
from ganscale.metrics.callback import EvalAndPlot
from ganscale.utils.intervals import due


def team_loss(bob_bits: Tensor, eve_bits: Tensor, bits: int) -> Tensor:
    """Alice and Bob's loss from the batch means of Bob's and Eve's errors (in bits): Bob's error
    plus (N/2 - Eve's error)^2 / (N/2)^2, zero when Bob is exact and Eve no better than chance
    (a wrong-on-purpose Eve, error N, would be as informative as a perfect one)."""
    half = bits / 2
    return bob_bits + (half - eve_bits) ** 2 / half**2


class CryptoGame(Game):
    name = "crypto"
    players = {"AB": Player(nets=("alice", "bob"), optim="G"), "E": Player(nets=("eve",), optim="D")}
    sample_net = None  # no generator: nothing to sample or plot

    def build(self, cfg, info):
        self.bits = cfg.game.crypto.bits
        return build_crypto_nets(self.bits, cfg.game.crypto.eve_fc_layers)

    def phases(self, cfg):
        return [Phase("AB_main", "AB", self.team),
                Phase("E_main", "E", self.eavesdropper, repeat=cfg.game.crypto.eve_steps)]

    def callbacks(self, cfg, run_dir: str) -> list:
        return [CryptoEvaluation(cfg, run_dir)]

    def messages(self, m, sub: int) -> tuple[Tensor, Tensor]:
        """This rank's rows of the step's global batch of (plaintext, key) pairs, -1/+1 bits."""
        n = m.cfg.data.batch_size
        pk = m.draw(n, lambda total, g: random_bits(total, 2 * self.bits, g, m.device), sub=sub)
        return pk[:, :self.bits], pk[:, self.bits:]

    def team(self, m, sub: int) -> Tensor:
        p, k = self.messages(m, sub)
        c = m.alice(p, k)
        bob = bit_errors(p, m.bob(c, k)).mean()
        eve = m.global_mean(bit_errors(p, m.eve(c)).mean())  # inside a square: the global batch's mean
        loss = team_loss(bob, eve, self.bits)
        m.stats.update({"loss/AB": loss.detach(), "bits/bob": bob.detach(), "bits/eve_vs_AB": eve.detach()})
        return loss

    def eavesdropper(self, m, sub: int) -> Tensor:
        p, k = self.messages(m, sub)
        with torch.no_grad():
            c = m.alice(p, k)
        loss = bit_errors(p, m.eve(c)).mean()
        m.stats["loss/E"] = loss.detach()
        return loss


class CryptoEvaluation(EvalAndPlot):
    """Every trainer.eval_every iterations Bob's and Eve's bit errors on fresh pairs; at
    trainer.max_iters the paper's protocol with a fresh Eve (ganscale.games.crypto_eval). Written
    like every evaluation: metrics.jsonl, final_metrics.json, the loggers, and `latest_metrics`
    for the checkpoint markers. Every rank computes the same numbers (seeded draws, the same
    weights), so no rank waits on another; rank 0 writes."""

    def on_train_start(self, trainer, pl_module) -> None:
        pass  # no image evaluator to load

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it, last = pl_module.iteration, self.cfg.trainer.max_iters
        if not due(it, self.cfg.trainer.eval_every, last):
            return
        final = it == last
        metrics = evaluate_crypto(pl_module.alice, pl_module.bob, pl_module.eve, self.cfg, pl_module.device,
                                  retrain=final)
        self.latest_metrics = {"iter": it, **metrics}
        self._write(trainer, it, metrics, final=final)
