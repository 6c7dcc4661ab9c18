"""Typed config of the networks (`model.*`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ganscale.nets.discrete.config import DiscreteConfig
from ganscale.nets.text2img.config import DFGANConfig, StackGANConfig, StackGANppConfig

if TYPE_CHECKING:
    from ganscale.config.schema import RunConfig

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "elu", "silu", "gelu")
NORMS = ("none", "batch", "layer")


@dataclass
class MLPNetConfig:
    width: int = 128
    """Hidden units per layer."""
    depth: int = 3
    """Number of hidden layers."""
    activation: str = "relu"
    """One of relu, leaky_relu, tanh, elu, silu, gelu."""
    norm: str = "none"
    """Normalization after each hidden linear layer: none, batch or layer."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.activation not in ACTIVATIONS:
            out.append(f"activation={self.activation!r} unknown; choose one of: {', '.join(ACTIVATIONS)}")
        if self.norm not in NORMS:
            out.append(f"norm={self.norm!r} unknown; choose one of: {', '.join(NORMS)}")
        if self.width < 1 or self.depth < 1:
            out.append(f"width={self.width} and depth={self.depth} must both be >= 1")
        return out


@dataclass
class MLPConfig:
    G: MLPNetConfig = field(default_factory=MLPNetConfig)
    """Generator MLP."""
    D: MLPNetConfig = field(default_factory=MLPNetConfig)
    """Discriminator MLP."""


@dataclass
class DCGANConfig:
    """DCGAN (Radford et al. 2016) at 28, 32 or 64 px: strided (transposed) convolutions.
    Conditional G uses class-conditional BatchNorm, conditional D a projection head."""

    G_ch: int = 64
    """G width: the layer at resolution r has G_ch * (res / r) channels (halving as it grows)."""
    D_ch: int = 64
    """D width: the layer at resolution r has D_ch * (res / r) / 2 channels (doubling as it shrinks)."""
    D_norm: str = "none"
    """Normalization in D after each conv but the first: none (use with spectral norm) or batch."""
    label_input: bool = True
    """Conditional nets also read the label at the input (Mirza & Osindero 2014): one_hot(y) is
    concatenated to z in G and given to D's first conv as constant maps. Besides conditional BN and
    the projection head, this direct path makes G follow the class within a few thousand steps."""
    G_output: str = "tanh"
    """G's last activation: tanh (images in [-1, 1]) or logits (none: the unbounded output that
    game.name=discrete reads as per-pixel Bernoulli logits)."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.G_ch < 1 or self.D_ch < 1:
            out.append(f"G_ch={self.G_ch} and D_ch={self.D_ch} must be >= 1")
        if self.D_norm not in ("none", "batch"):
            out.append(f"D_norm={self.D_norm!r} unknown; choose one of: none, batch")
        if self.G_output not in ("tanh", "logits"):
            out.append(f"G_output={self.G_output!r} unknown; choose one of: tanh, logits")
        return out


@dataclass
class ResNetConfig:
    """ResNet G and D (SNGAN, Miyato et al. 2018; cGAN projection, Miyato & Koyama 2018).
    Every resolution has a default channel table; G_ch/D_ch scale it."""

    G_ch: int = 64
    """G base width; stage i has G_ch * G_mult[i] channels."""
    D_ch: int = 64
    """D base width; block i has D_ch * D_mult[i] output channels."""
    G_mult: list[int] = field(default_factory=list)
    """G channel multipliers per stage, bottom (4x4 or 7x7) first; [] = the table for the resolution."""
    D_mult: list[int] = field(default_factory=list)
    """D channel multipliers per block (first block first); [] = the table for the resolution."""
    attn_res: int = 0
    """Resolution at which G and D get a self-attention block (SAGAN); 0 = none."""
    bn_eps: float = 1e-5
    """BatchNorm epsilon in G."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        if self.G_ch < 1 or self.D_ch < 1:
            out.append(f"G_ch={self.G_ch} and D_ch={self.D_ch} must be >= 1")
        if any(m < 1 for m in [*self.G_mult, *self.D_mult]):
            out.append(f"G_mult={self.G_mult} and D_mult={self.D_mult} must hold positive integers")
        if self.attn_res < 0:
            out.append(f"attn_res={self.attn_res} must be >= 0 (0 = no attention)")
        return out


@dataclass
class BigGANConfig(ResNetConfig):
    """BigGAN (Brock et al. 2019): ResNet G/D with a shared class embedding feeding every
    conditional BatchNorm, the latent z split across the blocks (hierarchical z), self-attention,
    spectral norm in G and D, orthogonal regularization of G and a projection discriminator."""

    G_ch: int = 96
    """G base width (96 in the paper at 128 and 256 px)."""
    D_ch: int = 96
    """D base width."""
    attn_res: int = 64
    """Resolution of the self-attention block in G and D (64 at 128 px, 128 at 256 px)."""
    shared_dim: int = 128
    """Size of the shared class embedding (concatenated with each z chunk to condition BatchNorm)."""
    hierarchical_z: bool = True
    """Split z into one chunk for the input layer and one per G block (z_dim must divide evenly)."""
    spectral_norm: bool = True
    """Spectral norm on every conv/linear of G (not the shared embedding) and D, incl. D's class embedding."""
    sn_eps: float = 1e-6
    """Epsilon of the spectral norm power iteration."""
    ortho_weight: float = 1e-4
    """beta of the orthogonal regularization beta * ||W W^T * (1 - I)||_F^2 on G's weights (0 = off)."""
    cross_replica_bn: bool = False
    """Synchronise G's BatchNorm statistics across ranks (SyncBatchNorm, BigGAN's cross-replica BN)."""

    def check(self, root: "RunConfig") -> list[str]:
        out = super().check(root)
        if self.shared_dim < 1:
            out.append(f"shared_dim={self.shared_dim} must be >= 1")
        if self.ortho_weight < 0:
            out.append(f"ortho_weight={self.ortho_weight} must be >= 0")
        t = root.trainer
        if (root.model.arch == "biggan" and self.cross_replica_bn and t.accelerator == "cpu"
                and t.devices * t.num_nodes > 1):
            out.append("cross_replica_bn=true needs GPUs (torch's SyncBatchNorm has no CPU kernel across "
                       "processes); set model.biggan.cross_replica_bn=false for CPU runs")
        return out


@dataclass
class MinibatchDiscriminationConfig:
    enabled: bool = False
    """Append Salimans et al.'s minibatch-discrimination features to D's last hidden layer."""
    num_kernels: int = 16
    """B, the number of kernels (output features appended)."""
    kernel_dim: int = 4
    """C, the dimension of each kernel's projection (L1 distances are taken over it)."""


@dataclass
class MinibatchStdDevConfig:
    enabled: bool = False
    """Append ProGAN's minibatch standard deviation feature(s) to D's last hidden layer."""
    group_size: int = 4
    """Samples per group whose standard deviation is taken (min(group_size, batch) is used)."""
    num_features: int = 1
    """Feature groups, each giving one appended stddev feature (StyleGAN2's num_channels)."""


@dataclass
class FeatureMatchingConfig:
    weight: float = 0.0
    """Weight of the feature-matching G loss ||E f(x) - E f(G(z))||^2; 0 = off."""
    adversarial_weight: float = 1.0
    """Weight of the adversarial G loss next to it; 0 = feature matching alone."""


@dataclass
class RemediesConfig:
    """Mode-collapse remedies: packing and batch-level D layers (architecture), feature matching (G loss)."""

    pack: int = 1
    """PacGAN packing degree m: D judges m samples at once; 1 = off. The per-rank batch
    data.batch_size must be divisible by m."""
    minibatch_discrimination: MinibatchDiscriminationConfig = field(default_factory=MinibatchDiscriminationConfig)
    """Minibatch discrimination (Salimans et al. 2016)."""
    minibatch_stddev: MinibatchStdDevConfig = field(default_factory=MinibatchStdDevConfig)
    """Minibatch standard deviation (ProGAN)."""
    feature_matching: FeatureMatchingConfig = field(default_factory=FeatureMatchingConfig)
    """Feature matching (Salimans et al. 2016)."""

    def check(self, root: "RunConfig") -> list[str]:
        out = []
        b = root.data.batch_size
        if self.pack < 1:
            out.append(f"pack={self.pack} must be >= 1 (1 = no packing)")
        elif b % self.pack:
            out.append(f"pack={self.pack}: the per-rank batch data.batch_size={b} is not divisible by it; "
                       f"choose a batch size that is a multiple of {self.pack} or another pack")
        mbd, msd, fm = self.minibatch_discrimination, self.minibatch_stddev, self.feature_matching
        if mbd.num_kernels < 1 or mbd.kernel_dim < 1:
            out.append(f"minibatch_discrimination: num_kernels={mbd.num_kernels} and "
                       f"kernel_dim={mbd.kernel_dim} must be >= 1")
        if msd.group_size < 1 or msd.num_features < 1:
            out.append(f"minibatch_stddev: group_size={msd.group_size} and num_features={msd.num_features} "
                       "must be >= 1")
        elif msd.enabled and self.pack >= 1 and b % self.pack == 0:
            n = b // self.pack  # what D sees per call
            g = min(msd.group_size, n)
            if n % g:
                out.append(f"minibatch_stddev.group_size={msd.group_size}: D sees {n} inputs per call "
                           f"(data.batch_size / pack), not divisible by the group; choose a divisor of {n}")
        if msd.enabled and root.model.arch == "mlp" and root.model.mlp.D.width % msd.num_features:
            out.append(f"minibatch_stddev.num_features={msd.num_features} must divide "
                       f"model.mlp.D.width={root.model.mlp.D.width}")
        if fm.weight < 0 or fm.adversarial_weight < 0:
            out.append("feature_matching: weight and adversarial_weight must be >= 0")
        elif fm.weight == 0 and fm.adversarial_weight == 0:
            out.append("feature_matching: weight and adversarial_weight are both 0, so G has no loss; "
                       "set one of them > 0")
        return out


@dataclass
class ModelConfig:
    arch: str = "mlp"
    """Network family for G and D (see ganscale.registry.ARCHS): mlp, dcgan, sngan, biggan."""
    z_dim: int = 2
    """Latent dimension of G."""
    conditional: bool = True
    """Condition G and D on the class label when the data has labels; false = unconditional."""
    mlp: MLPConfig = field(default_factory=MLPConfig)
    """Settings of the MLP family (arch=mlp)."""
    dcgan: DCGANConfig = field(default_factory=DCGANConfig)
    """Settings of the DCGAN family (arch=dcgan)."""
    sngan: ResNetConfig = field(default_factory=ResNetConfig)
    """Settings of the SNGAN ResNet family (arch=sngan)."""
    biggan: BigGANConfig = field(default_factory=BigGANConfig)
    """Settings of the BigGAN family (arch=biggan)."""
    stackgan: StackGANConfig = field(default_factory=StackGANConfig)
    """Settings of StackGAN (arch=stackgan; text-to-image)."""
    stackganpp: StackGANppConfig = field(default_factory=StackGANppConfig)
    """Settings of StackGAN++ (arch=stackganpp; text-to-image)."""
    dfgan: DFGANConfig = field(default_factory=DFGANConfig)
    """Settings of DF-GAN (arch=dfgan; text-to-image)."""
    remedies: RemediesConfig = field(default_factory=RemediesConfig)
    """Mode-collapse remedies: packing, minibatch discrimination / stddev layers in D, feature matching."""
    discrete: DiscreteConfig = field(default_factory=DiscreteConfig)
    """Discrete outputs (game.name=discrete): the gradient estimator and its settings."""

    def check(self, root: "RunConfig") -> list[str]:
        from ganscale.registry import ARCHS

        out = []
        p = ARCHS.problem("arch", self.arch)
        if p:
            out.append(p)
        if self.z_dim < 1:
            out.append(f"z_dim={self.z_dim} must be >= 1")
        return out
