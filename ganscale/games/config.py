"""Which game the engine plays, and how it conditions its networks."""

from __future__ import annotations

from dataclasses import dataclass, field

from ganscale.games.text2img_config import TextGameConfig
ENCODERS = ("deterministic", "gaussian")
PRIORS = ("uniform", "normal")
NETS = ("authors", "concat")
"""game.bigan.nets (ganscale.nets.bigan builds them)."""
UPDATES = ("alternating", "simultaneous")
"""game.bigan.update: the order of the D and GE steps."""


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
    nets: str = "concat"
    """How z meets the hidden layers (ganscale/nets/bigan.py). `concat`: z concatenated to x at D's
    input, plain MLPs, BatchNorm with scale and shift (D's first layer excepted); the better of the
    two at the CPU budget of docs/bigan.md. `authors`: jeffdonahue/bigan's MNIST nets, z a learned
    bias of D's and G's second and later hidden layers, no BatchNorm in D's and E's first layer,
    BatchNorm without scale and shift."""
    update: str = "alternating"
    """`alternating`: D steps, then G and E step against the updated D on fresh z. `simultaneous`:
    the authors' update (jeffdonahue/bigan `update_both`): G and E step first, then D steps on the
    very pairs G and E were scored on (the same x, z and codes, from before their step), so both
    players' gradients are taken at the same point, as from the authors' one forward pass."""
    batch_norm: bool = True
    """BatchNorm in the hidden layers of G, E and D (where `nets` puts it), as the authors'. Its
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
        if self.nets not in NETS:
            problems.append(f"nets={self.nets!r}: choose one of {', '.join(NETS)}")
        if self.update not in UPDATES:
            problems.append(f"update={self.update!r}: choose one of {', '.join(UPDATES)}")
        if self.prior not in PRIORS:
            problems.append(f"prior={self.prior!r}: choose one of {', '.join(PRIORS)}")
        for name in ("width", "depth", "eval_train_images", "eval_test_images"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        return problems

@dataclass
class SSLConfig:
    """The semi-supervised GAN (game.name=ssl_gan; Salimans et al. 2016, openai/improved-gan)."""

    z_dim: int = 100
    """G's uniform noise U(0, 1) dimensions."""
    g_width: int = 500
    """Units of G's two hidden layers (BatchNorm, softplus)."""
    g_batchnorm: bool = True
    """BatchNorm in G's hidden layers (per-rank statistics: N ranks then differ from one process)."""
    d_widths: list[int] = field(default_factory=lambda: [1000, 500, 250, 250, 250])
    """D's hidden layers (weight-normed, ReLU); the last one is the feature-matching layer."""
    input_noise: float = 0.3
    """Std of the Gaussian noise D adds to its input (pixels in [0, 1]) while training."""
    hidden_noise: float = 0.5
    """Std of the Gaussian noise D adds after every hidden layer while training."""
    num_classes: int = 10
    """K, the classes of D's logits (the labelled stream's labels are 0..K-1)."""
    init_batch: int = 500
    """Images (the first of the unlabelled stream) that set D's weight-norm scales and biases,
    the reference's data-dependent init (needs data.kind=digits); 0 = scales 1, biases 0."""
    unlabelled_weight: float = 1.0
    """Weight of the unsupervised real/fake terms in D's loss (the supervised CE has weight 1)."""

    def check(self, root) -> list[str]:
        out = []
        if root.game.name == "ssl_gan" and root.data.kind == "digits" and root.data.digits.labelled_per_class < 1:
            out.append("game.name=ssl_gan needs labelled images: set data.digits.labelled_per_class (e.g. 10)")
        if self.num_classes < 2 or self.z_dim < 1 or self.g_width < 1 or not self.d_widths or min(self.d_widths) < 1:
            out.append("num_classes must be >= 2; z_dim, g_width and every d_widths entry >= 1")
        if root.game.name == "ssl_gan" and self.init_batch > 0 and root.data.kind != "digits":
            out.append(f"init_batch={self.init_batch} initialises D from data.kind=digits images; "
                       "set game.ssl.init_batch=0 for other data")
        if self.input_noise < 0 or self.hidden_noise < 0:
            out.append("input_noise and hidden_noise must be >= 0")
        if root.game.name == "ssl_gan" and root.gan.n_disc > 2:
            out.append(f"*: game.name=ssl_gan needs gan.n_disc=1 (G's step reuses D's unlabelled batch) or 2 "
                       f"(G's step gets a second unlabelled batch, the reference's), not {root.gan.n_disc}")
        return out


@dataclass
class InfoGANConfig:
    """InfoGAN (game.name=infogan; Chen et al. 2016, openai/InfoGAN's MNIST experiment)."""

    noise_dim: int = 62
    """Incompressible noise dimensions, U(-1, 1)."""
    num_categories: int = 10
    """Categories of the uniform categorical code."""
    num_continuous: int = 2
    """Continuous codes, each U(-1, 1)."""
    info_weight: float = 1.0
    """lambda: lambda * L_I is subtracted from both D+Q's loss and G's loss (info_reg_coeff)."""
    width: int = 1024
    """Units of G's first and D's last fully connected layer (the paper's 1024)."""
    ch: int = 64
    """Channels of G's last and D's first convolution (the paper's 64; the other one has twice)."""
    batchnorm: bool = True
    """BatchNorm in G, D's trunk and Q (per-rank statistics: N ranks then differ from one process)."""
    slope: float = 0.01
    """Leaky ReLU slope of D and Q (the reference's leaky_rectify: 0.01)."""
    init: str = "pytorch"
    """Weight initialisation: `pytorch` (torch's layer defaults) or `reference` (openai/InfoGAN's
    custom_ops: N(0, 0.02), BatchNorm scales N(1, 0.02)). The reference's lets D win and G emit noise
    at the reduced width measured here (docs/infogan.md: 17% and 26% accuracy vs 62% and 54%)."""

    def check(self, root) -> list[str]:
        out = []
        if self.init not in ("reference", "pytorch"):
            out.append(f"init={self.init!r}: choose reference or pytorch")
        if not 0 <= self.slope <= 1:
            out.append(f"slope={self.slope} must be in [0, 1]")
        if self.noise_dim < 0 or self.num_categories < 2 or self.num_continuous < 0 or self.width < 1 or self.ch < 1:
            out.append("noise_dim and num_continuous must be >= 0, num_categories >= 2, width and ch >= 1")
        if self.info_weight < 0:
            out.append(f"info_weight={self.info_weight} must be >= 0")
        return out

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
    stop_bob_bits: float = 0.0
    """Stop early, as the authors' reference code does (0.02 there), at the first evaluation
    (trainer.eval_every) where Bob's error is below this many bits and the co-trained Eve's above
    `stop_eve_bits`; the fresh-Eve evaluation then runs at once. 0 trains to trainer.max_iters."""
    stop_eve_bits: float = 0.0
    """The co-trained Eve's error (bits) above which training may stop early (7.7 in the reference
    code); used only with stop_bob_bits > 0."""

    def check(self, root) -> list[str]:
        problems = []
        if self.stop_bob_bits < 0 or not 0 <= self.stop_eve_bits <= self.bits:
            problems.append(f"stop_bob_bits={self.stop_bob_bits}, stop_eve_bits={self.stop_eve_bits}: need "
                            f"stop_bob_bits >= 0 and 0 <= stop_eve_bits <= bits={self.bits}")
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
    ssl: SSLConfig = field(default_factory=SSLConfig)
    """Settings of game.name=ssl_gan (ganscale.games.ssl_gan)."""
    infogan: InfoGANConfig = field(default_factory=InfoGANConfig)
    """Settings of game.name=infogan (ganscale.games.infogan)."""
    crypto: CryptoConfig = field(default_factory=CryptoConfig)
    """Settings of the `crypto` game (adversarial neural cryptography)."""

    def check(self, root) -> list[str]:
        from ganscale.registry import CONDITIONS, GAMES

        problems = [p for p in (GAMES.problem("name", self.name),) if p]
        if self.condition != "auto":
            problems += [p for p in (CONDITIONS.problem("condition", self.condition),) if p]
        if self.fake_labels not in ("uniform", "data"):
            problems.append(f"fake_labels={self.fake_labels!r}: choose uniform or data")
        return problems  # game.text (and every nested config) is checked by the config tree walk
