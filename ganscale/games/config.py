"""Which game the engine plays, and how it conditions its networks."""

from __future__ import annotations

from dataclasses import dataclass, field

from ganscale.games.text2img_config import TextGameConfig
ENCODERS = ("deterministic", "gaussian")
PRIORS = ("uniform", "normal")


@dataclass
class BiGANConfig:
    """BiGAN (Donahue et al. 2017) and ALI (Dumoulin et al. 2017): G and an encoder E trained
    together (player GE, `optim.G`) against a joint discriminator D(x, z) (`optim.D`). The latent
    size is model.z_dim; the D loss is loss.name's."""

    encoder: str = "deterministic"
    """`deterministic`: E(x) is the code (BiGAN). `gaussian`: E gives a mean and log-variance and the
    code is reparameterised, z = mu + sigma * eps (ALI); `ganscale encode` writes the mean."""
    prior: str = "uniform"
    """p(z): `uniform` on [-1, 1]^z_dim (the BiGAN authors' MNIST setting) or `normal` (ALI)."""
    width: int = 1024
    """Hidden units per layer of G, E and D."""
    depth: int = 2
    """Hidden layers of G, E and D."""
    batch_norm: bool = True
    """BatchNorm in the hidden layers of G, E and D (D's first excepted), as the authors'. Its
    statistics are per rank: N ranks equal one process with the global batch only without it."""
    eval_data: str = "../shared/data/mnist"
    """Folder of the MNIST-style IDX files (train and test, with labels) that the latent evaluation
    reads at trainer.eval_every and at the end: 1-NN and linear-probe accuracy on E(x), and the
    reconstruction ratio. Empty: no evaluation."""
    eval_train_images: int = 60000
    """Train images the 1-NN classifier and the linear probe are fitted on (the first N)."""
    eval_test_images: int = 10000
    """Test images they are scored on (the first N); the reconstruction ratio uses these too."""

    def check(self, root) -> list[str]:
        problems = []
        if self.encoder not in ENCODERS:
            problems.append(f"encoder={self.encoder!r}: choose one of {', '.join(ENCODERS)}")
        if self.prior not in PRIORS:
            problems.append(f"prior={self.prior!r}: choose one of {', '.join(PRIORS)}")
        for name in ("width", "depth", "eval_train_images", "eval_test_images"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        return problems


@dataclass
class GameConfig:
    name: str = "gan"
    """The game (ganscale.games): `gan` is G against D with the losses, regularizers, unrolling
    and remedies of the other sections."""
    condition: str = "auto"
    """What G and D are conditioned on (ganscale.conditions): `auto` (class labels when the data
    has classes and model.conditional, else none), `none`, `class` or `text` (captions through
    the frozen text encoder of game.text)."""
    fake_labels: str = "uniform"
    """Class labels of the fakes in a class-conditional game: `uniform` over the classes, or
    `data` (drawn from this iteration's real labels of the global batch, i.e. the data's
    class frequencies)."""
    text: TextGameConfig = field(default_factory=TextGameConfig)
    """The text-to-image games' settings (`dfgan`, `stackgan`, `stackganpp`): the frozen text
    encoder, the loss weights."""
    bigan: BiGANConfig = field(default_factory=BiGANConfig)
    """Settings of the `bigan` game (BiGAN / ALI: an encoder and a joint discriminator)."""

    def check(self, root) -> list[str]:
        from ganscale.registry import CONDITIONS, GAMES

        problems = [p for p in (GAMES.problem("name", self.name),) if p]
        if self.condition != "auto":
            problems += [p for p in (CONDITIONS.problem("condition", self.condition),) if p]
        if self.fake_labels not in ("uniform", "data"):
            problems.append(f"fake_labels={self.fake_labels!r}: choose uniform or data")
        problems += [f"text.{p}" for p in self.text.check(root)]
        return problems
