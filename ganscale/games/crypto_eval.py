"""Adversarial neural cryptography's measures (Abadi & Andersen 2016) and its evaluation protocol.

    ganscale train configs/crypto/abadi16.yaml      # writes <run>/final_metrics.json at the end
    python benchmarks/crypto.py --seeds 10           # the per-seed table of docs/crypto.md

Errors are in bits: d(P, P') = sum_i |P_i - P'_i| / 2 for plaintexts of -1/+1 bits, so a wrong
sign costs one bit, a blind guess (0) half a bit per position, and random guessing N/2 bits.

The paper's protocol, after training: Alice is frozen, a *fresh* Eve (new initialisation, Eve's
optimizer settings) trains from scratch against her for a fixed budget, and the report gives
Bob's error and the fresh Eve's on new random (plaintext, key) pairs. An Eve that co-trained with
Alice can be out of date; a fresh one measures what the ciphertext still gives away.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import Tensor, nn

from ganscale.nets.crypto import MixTransform
from ganscale.train.optim import build_optimizer

SUCCESS_BOB_BITS = 0.05
"""The paper's success criterion: Bob's error below this many bits, ..."""
SUCCESS_EVE_FRACTION = 7.3 / 16
"""... and the retrained Eve's at least 7.3 of 16 bits (scaled to N bits for other widths)."""


def bit_errors(plaintext: Tensor, guess: Tensor) -> Tensor:
    """[B] per-row errors in bits: sum_i |P_i - P'_i| / 2 (P in {-1, +1}, P' in [-1, 1])."""
    return (plaintext - guess).abs().sum(dim=1) / 2


def random_bits(n: int, bits: int, generator: torch.Generator, device=None) -> Tensor:
    """[n, bits] uniformly random bits as -1.0/+1.0."""
    return torch.randint(0, 2, (n, bits), generator=generator, device=device).float() * 2 - 1


@torch.no_grad()
def measure(alice: nn.Module, bob: nn.Module, eve: nn.Module, bits: int, samples: int,
            generator: torch.Generator, device, batch: int = 4096) -> dict[str, float]:
    """Bob's and `eve`'s mean bit errors on `samples` fresh (plaintext, key) pairs."""
    bob_sum = eve_sum = 0.0
    for start in range(0, samples, batch):
        n = min(batch, samples - start)
        p, k = random_bits(n, bits, generator, device), random_bits(n, bits, generator, device)
        c = alice(p, k)
        bob_sum += float(bit_errors(p, bob(c, k)).sum())
        eve_sum += float(bit_errors(p, eve(c)).sum())
    return {"bob_bits": bob_sum / samples, "eve_bits": eve_sum / samples}


def train_fresh_eve(alice: nn.Module, bits: int, fc_layers: int, optim_cfg, steps: int, batch: int,
                    seed: int, device) -> nn.Module:
    """A new Eve (initialised from `seed`), trained `steps` steps on her L1 bit error against the
    frozen `alice` with `optim_cfg`'s optimizer (ganscale.train.optim)."""
    with torch.random.fork_rng(devices=[]):  # seeded initialisation; the caller's RNG untouched
        torch.manual_seed(seed)
        eve = MixTransform(bits, bits, fc_layers=fc_layers).to(device)
    opt = build_optimizer(eve.parameters(), optim_cfg)
    g = torch.Generator(device=device).manual_seed(seed)
    for _ in range(steps):
        p, k = random_bits(batch, bits, g, device), random_bits(batch, bits, g, device)
        with torch.no_grad():
            c = alice(p, k)
        loss = bit_errors(p, eve(c)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return eve.eval()


def _frozen_copy(net: nn.Module, device) -> nn.Module:
    """A float32 copy (training may run in bf16 or under DeepSpeed) that no gradient reaches."""
    out = copy.deepcopy(net).float().to(device).eval()
    out.requires_grad_(False)
    return out


def evaluate_crypto(alice: nn.Module, bob: nn.Module, eve: nn.Module, cfg, device, retrain: bool = True) \
        -> dict[str, float]:
    """The paper's protocol: Bob's and the co-trained Eve's errors, then (when `retrain` and
    game.crypto.eval_eve_steps > 0) the strongest of eval_eve_restarts fresh Eves' error against
    the frozen Alice, and whether the run succeeded (Bob < 0.05 bits, fresh Eve >= 7.3 of 16)."""
    c = cfg.game.crypto
    alice, bob, eve = (_frozen_copy(n, device) for n in (alice, bob, eve))
    g = torch.Generator(device=device).manual_seed(cfg.seed + 7919)
    out = measure(alice, bob, eve, c.bits, c.eval_samples, g, device)
    if not retrain or c.eval_eve_steps == 0:
        return out
    t0 = time.perf_counter()
    fresh = []
    for r in range(c.eval_eve_restarts):
        new_eve = train_fresh_eve(alice, c.bits, c.eve_fc_layers, cfg.optim.D, c.eval_eve_steps, c.eval_eve_batch,
                                  seed=cfg.seed * 1000 + 104729 + r, device=device)
        g = torch.Generator(device=device).manual_seed(cfg.seed + 7919)
        fresh.append(measure(alice, bob, new_eve, c.bits, c.eval_samples, g, device)["eve_bits"])
    out["fresh_eve_bits"] = min(fresh)
    out["fresh_eve_seconds"] = time.perf_counter() - t0
    out["success"] = float(out["bob_bits"] < SUCCESS_BOB_BITS and out["fresh_eve_bits"] >= SUCCESS_EVE_FRACTION * c.bits)
    return out
