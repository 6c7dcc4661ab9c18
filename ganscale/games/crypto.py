"""Adversarial neural cryptography (Abadi & Andersen 2016): Alice and Bob against Eve.

    ganscale train configs/crypto/abadi16.yaml
    ganscale train configs/crypto/abadi16.yaml trainer.max_iters=2000 data.batch_size=512
    python benchmarks/crypto.py --seeds 10          # docs/crypto.md

Alice encrypts an N-bit plaintext P with an N-bit key K into a ciphertext C; Bob decrypts C with
K; Eve reads C alone (networks: ganscale.nets.crypto). Players and phases, in order:

    AB_main      player AB (Alice + Bob, optim.G): Bob's error / N + (N/2 - Eve's error)^2 / (N/2)^2
    E_main x 2   player E (Eve, optim.D): Eve's error, against a frozen Alice

Errors are L1 in bits, d(P, P') = sum |P - P'| / 2 (ganscale.games.crypto_eval). The team's loss is
computed as the authors' reference code does (tensorflow/models, research/adversarial_crypto):
Bob's error rescaled to [0, 1] per pair, and Eve's deviation from N/2 squared *per pair* before the
batch mean, so Alice is pushed towards a ciphertext on which Eve's every guess is at chance (an Eve
right on half the pairs and wrong on the others scores N/2 on average, but not per pair). Being a
batch mean of per-pair terms, it is linear in the batch: N ranks' averaged gradients are exactly one
process's. Every step draws fresh (P, K) pairs with the engine's seeded draws; there is no data set
(data.kind=none).

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
    """Alice and Bob's loss from per-pair errors in bits ([B] each), as the reference code computes
    it: mean(Bob's error) / N + mean((N/2 - Eve's error)^2) / (N/2)^2. Zero when Bob is exact and
    Eve's every guess at chance; a wrong-on-purpose Eve (error N) is as informative as a perfect one,
    so she is penalised alike."""
    half = bits / 2
    return bob_bits.mean() / bits + ((half - eve_bits) ** 2).mean() / half**2


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
        bob, eve = bit_errors(p, m.bob(c, k)), bit_errors(p, m.eve(c))
        loss = team_loss(bob, eve, self.bits)
        m.stats.update({"loss/AB": loss.detach(), "bits/bob": bob.detach().mean(),
                        "bits/eve_vs_AB": eve.detach().mean()})
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
    trainer.max_iters, or at the first evaluation that meets game.crypto.stop_* (the reference
    code's early stop), the paper's protocol with a fresh Eve (ganscale.games.crypto_eval). Written
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
        if not final and reached_target(metrics, self.cfg.game.crypto):
            final = trainer.should_stop = True  # every rank measured the same numbers: all stop here
            metrics = evaluate_crypto(pl_module.alice, pl_module.bob, pl_module.eve, self.cfg, pl_module.device)
        self.latest_metrics = {"iter": it, **metrics}
        self._write(trainer, it, metrics, final=final)


def reached_target(metrics: dict, c) -> bool:
    """The reference code's stopping rule: Bob below stop_bob_bits and the co-trained Eve above
    stop_eve_bits (off when stop_bob_bits is 0)."""
    return c.stop_bob_bits > 0 and metrics["bob_bits"] < c.stop_bob_bits and metrics["eve_bits"] > c.stop_eve_bits
