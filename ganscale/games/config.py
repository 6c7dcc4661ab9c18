"""Which game the engine plays, and how it conditions its networks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CryptoConfig:
    """Adversarial neural cryptography (Abadi & Andersen 2016; game.name=crypto, ganscale.games.crypto).
    Alice and Bob train with `optim.G`, Eve with `optim.D`; data.batch_size is the per-rank batch of
    (plaintext, key) pairs, drawn fresh every step."""

    bits: int = 16
    """N: bits of the plaintext, the key and the ciphertext (16 in the paper)."""
    eve_steps: int = 2
    """Eve's steps per Alice/Bob step (2 in the paper)."""
    eve_fc_layers: int = 2
    """Fully-connected layers (each 2N wide) before Eve's convolutions; Alice and Bob have one."""
    eval_eve_steps: int = 2000
    """The paper's evaluation: after training, a fresh Eve trains this many steps against the
    frozen Alice (with optim.D's optimizer); 0 skips it."""
    eval_eve_batch: int = 4096
    """Batch of (plaintext, key) pairs of each of the fresh Eve's steps."""
    eval_eve_restarts: int = 1
    """Fresh Eves trained one after the other from new initialisations; the strongest (lowest
    error) is reported."""
    eval_samples: int = 16384
    """Fresh (plaintext, key) pairs on which Bob's and the Eves' bit errors are measured."""

    def check(self, root) -> list[str]:
        problems = []
        if self.bits < 2 or self.bits % 2:
            problems.append(f"bits={self.bits}: must be an even number >= 2 (the convolutions halve 2N to N)")
        for name in ("eve_steps", "eve_fc_layers", "eval_eve_batch", "eval_eve_restarts", "eval_samples"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if self.eval_eve_steps < 0:
            problems.append(f"eval_eve_steps={self.eval_eve_steps} must be >= 0")
        return problems


@dataclass
class GameConfig:
    name: str = "gan"
    """The game (ganscale.games): `gan` is G against D with the losses, regularizers, unrolling
    and remedies of the other sections."""
    condition: str = "auto"
    """What G and D are conditioned on (ganscale.conditions): `auto` (class labels when the data
    has classes and model.conditional, else none), `none` or `class`."""
    fake_labels: str = "uniform"
    """Class labels of the fakes in a class-conditional game: `uniform` over the classes, or
    `data` (drawn from this iteration's real labels of the global batch, i.e. the data's
    class frequencies)."""
    crypto: CryptoConfig = field(default_factory=CryptoConfig)
    """Settings of the `crypto` game (adversarial neural cryptography)."""

    def check(self, root) -> list[str]:
        problems = []
        if self.fake_labels not in ("uniform", "data"):
            problems.append(f"fake_labels={self.fake_labels!r}: choose uniform or data")
        return problems
