"""Typed config of the BiGAN / ALI game (`game.bigan.*`; ganscale.games.bigan)."""

from __future__ import annotations

from dataclasses import dataclass

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
