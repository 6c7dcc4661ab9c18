"""Which game the engine plays, and how it conditions its networks."""

from __future__ import annotations

from dataclasses import dataclass, field

from ganscale.games.bigan_config import BiGANConfig


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
    bigan: BiGANConfig = field(default_factory=BiGANConfig)
    """Settings of the `bigan` game (BiGAN / ALI: an encoder and a joint discriminator)."""

    def check(self, root) -> list[str]:
        from ganscale.registry import CONDITIONS, GAMES

        problems = [p for p in (GAMES.problem("name", self.name),) if p]
        if self.condition != "auto":
            problems += [p for p in (CONDITIONS.problem("condition", self.condition),) if p]
        if self.fake_labels not in ("uniform", "data"):
            problems.append(f"fake_labels={self.fake_labels!r}: choose uniform or data")
        return problems
