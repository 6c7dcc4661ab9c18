"""Typed configs of the text-to-image families (`model.stackgan`, `model.stackganpp`, `model.dfgan`)."""

from __future__ import annotations

from dataclasses import dataclass


def _positive(cfg, *names: str) -> list[str]:
    return [f"{n}={getattr(cfg, n)} must be >= 1" for n in names if getattr(cfg, n) < 1]


CA_ACTIVATIONS = ("relu", "leaky", "glu")
"""How each reference code activates the conditioning augmentation's linear layer before splitting
it into mean and log-variance: `relu` StackGAN-Pytorch's CA_NET (mu >= 0, log-variance >= 0, so
sigma >= 1); `leaky` the StackGAN paper's TensorFlow code (leaky ReLU 0.2, the second half read as
log sigma); `glu` StackGAN-v2's and AttnGAN's CA_NET (a layer twice as wide, halved by a gated
linear unit)."""


def _ca_act(cfg) -> list[str]:
    ok = cfg.ca_act in CA_ACTIVATIONS
    return [] if ok else [f"ca_act={cfg.ca_act!r}: choose one of {', '.join(CA_ACTIVATIONS)}"]


@dataclass
class StackGANConfig:
    """StackGAN (Zhang et al. 2017). Stage-I: text -> 64 px; Stage-II: Stage-I's 64 px image plus
    the text -> 256 px, with Stage-I frozen inside G (load its trained weights into G.stage1)."""

    stage: int = 1
    """1 (64 px) or 2 (256 px on top of a frozen Stage-I)."""
    text_dim: int = 256
    """Size of the sentence vectors (the text encoder's dim; 1024 for char-CNN-RNN embeddings)."""
    ca_dim: int = 128
    """Size of the conditioning-augmentation code c_hat (GAN.CONDITION_DIM: 128)."""
    ca_act: str = "relu"
    """The CA layer's activation (CA_ACTIVATIONS above): `relu` as
    StackGAN-Pytorch (sigma >= 1 on every dimension), `leaky` as the paper's TensorFlow code, `glu`
    as StackGAN-v2 and AttnGAN."""
    gf: int = 192
    """Stage-I G width: 8 gf channels at 4x4, halving with each doubling (GF_DIM: 192 on COCO, 128 on CUB)."""
    word_attention: int = 0
    """Resolution (8, 16 or 32) at which Stage-I G's features attend over the caption's words, as
    AttnGAN's attentional stages do (each pixel weights the encoder's word features; the context
    joins the features before two residual blocks); 0 = none, the paper's StackGAN. Needs a text
    encoder's word features (not precomputed sentence embeddings)."""
    df: int = 96
    """D width: df channels after the first conv, doubling to at most 8 df (DF_DIM: 96 on COCO, 64 on CUB)."""
    d_head: str = "concat"
    """D's matching-aware head: `concat` (the paper's: the compressed sentence tiled 4x4 beside the
    image features, a 3x3 conv, a 4x4 conv) or `projection` (the projection discriminator's head
    with the sentence in place of the class embedding, on the flattened 4x4 features)."""
    stage2_gf: int = 128
    """Stage-II G width: 4 gf2 channels at 16x16 (GF_DIM of the Stage-II configs)."""
    res_blocks: int = 4
    """Residual blocks of Stage-II G at 16x16 (R_NUM: 4)."""

    def check(self, root) -> list[str]:
        out = _positive(self, "text_dim", "ca_dim", "gf", "df", "stage2_gf") + _ca_act(self)
        if self.stage not in (1, 2):
            out.append(f"stage={self.stage} must be 1 (64 px) or 2 (256 px)")
        if self.res_blocks < 0:
            out.append(f"res_blocks={self.res_blocks} must be >= 0")
        if self.d_head not in ("concat", "projection"):
            out.append(f"d_head={self.d_head!r}: choose concat or projection")
        if self.word_attention not in (0, 8, 16, 32):
            out.append(f"word_attention={self.word_attention} must be 0 (off), 8, 16 or 32")
        return out


@dataclass
class StackGANppConfig:
    """StackGAN++ (Zhang et al. 2018): one tree G with branches at 64, 128, 256 px and one D per scale,
    each with a conditional and an unconditional head."""

    branches: int = 3
    """Scales 64 x 2^i for i < branches; the data's size must be the last (3: 256 px)."""
    text_dim: int = 256
    """Size of the sentence vectors (the text encoder's dim)."""
    ca_dim: int = 128
    """Size of the conditioning-augmentation code (GAN.EMBEDDING_DIM: 128)."""
    ca_act: str = "glu"
    """The CA layer's activation (CA_ACTIVATIONS above): `glu` as
    StackGAN-v2's CA_NET (a layer of 4 ca_dim halved by a gated linear unit)."""
    gf: int = 64
    """G width: 16 gf channels at 4x4 (GAN.GF_DIM: 64)."""
    df: int = 64
    """D width per scale (GAN.DF_DIM: 64)."""
    res_blocks: int = 2
    """Residual blocks per branch after the first (GAN.R_NUM: 2)."""

    def check(self, root) -> list[str]:
        out = _positive(self, "text_dim", "ca_dim", "gf", "df") + _ca_act(self)
        if self.branches not in (1, 2, 3):
            out.append(f"branches={self.branches} must be 1, 2 or 3 (64, 128, 256 px)")
        if self.res_blocks < 0:
            out.append(f"res_blocks={self.res_blocks} must be >= 0")
        return out


@dataclass
class DFGANConfig:
    """DF-GAN (Tao et al. 2022): one stage of deep text-image fusion blocks; a residual D with a
    matching-aware head."""

    text_dim: int = 256
    """Size of the sentence vectors (TEXT.EMBEDDING_DIM: 256)."""
    nf: int = 32
    """Base width: G starts with 8 nf channels at 4x4 (TRAIN.NF: 32 on CUB and COCO)."""
    d_nf: int = 0
    """D's base width when it differs from G's (0 = nf, the authors' one width for both): a G wider
    than D where D wins the game from the start (on the captioned digits it did not change the
    game: docs/text2img.md)."""
    d_head: str = "concat"
    """D's matching-aware head: `concat` (the authors': the sentence tiled 4x4 beside the image
    features, a 3x3 conv of 2 nf channels, a 4x4 conv) or `projection` (Miyato & Koyama's
    projection with the sentence in place of the class embedding: w^T phi(x) + (V s)^T phi(x),
    phi(x) the sum-pooled features). Trained alone to tell right from wrong captions of real
    captioned digits, the projection head learned it about 4x sooner (docs/text2img.md)."""
    affine_hidden: int = 0
    """Hidden units of each affine MLP (gamma, beta from [z, sentence]); 0 = the block's width."""
    output: str = "tanh"
    """G's last activation: `tanh` (the authors') or `linear` (none: samples are clamped to
    [-1, 1] only where they are saved or scored). On data whose pixels sit exactly at -1 (the
    captioned digits' black canvas) tanh can saturate for good: G's gradient vanishes
    (docs/text2img.md)."""

    def check(self, root) -> list[str]:
        out = _positive(self, "text_dim", "nf")
        out += [f"{k}={getattr(self, k)} must be >= 0 (0: the default)" for k in ("d_nf", "affine_hidden")
                if getattr(self, k) < 0]
        if self.d_head not in ("concat", "projection"):
            out.append(f"d_head={self.d_head!r}: choose concat or projection")
        if self.output not in ("tanh", "linear"):
            out.append(f"output={self.output!r}: choose tanh or linear")
        return out
