"""Typed config of `ganscale text train` (the DAMSM text/image encoder pair)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TextEncoderConfig:
    data: str = ""
    """Packed shard folder (manifest.json, vocab.json, samples whose .json holds {"captions": [...]})."""
    test_data: str = ""
    """Shard folder for R-precision; empty = hold out `test_fraction` of `data`."""
    test_fraction: float = 0.1
    """Share of `data` held out for R-precision when `test_data` is empty."""
    out: str = "text_encoder.safetensors"
    """Where the trained pair is saved (one safetensors file with the config and vocabulary inside)."""
    image_size: int = 64
    """Side the image encoder reads (images are resized to it); a multiple of 16."""
    max_len: int = 18
    """Tokens per caption (cut or padded); AttnGAN's WORDS_NUM is 18."""
    word_dim: int = 300
    """Word embedding size (AttnGAN: 300)."""
    dim: int = 256
    """Text feature size E: word features and sentence vector (AttnGAN's EMBEDDING_DIM: 256)."""
    image_ch: int = 32
    """Base width of the CNN image encoder."""
    dropout: float = 0.5
    """Dropout on the word embeddings."""
    gamma1: float = 4.0
    """Sharpness of the word-to-region attention (AttnGAN cfg.TRAIN.SMOOTH.GAMMA1)."""
    gamma2: float = 5.0
    """Weight of the most relevant word in the word-level score (GAMMA2)."""
    gamma3: float = 10.0
    """Scale of the pair scores before the softmax over the batch (GAMMA3)."""
    word_weight: float = 1.0
    """Weight of the word-level loss beside the sentence-level one."""
    batch_size: int = 48
    """Images per step (AttnGAN: 48); the other captions of the batch are the mismatches."""
    steps: int = 2000
    """Optimizer steps."""
    lr: float = 2e-3
    """Adam learning rate (AttnGAN's ENCODER_LR)."""
    beta1: float = 0.5
    """Adam beta1."""
    beta2: float = 0.999
    """Adam beta2."""
    clip: float = 0.25
    """Gradient norm clip of the text encoder (AttnGAN's RNN_GRAD_CLIP)."""
    candidates: int = 100
    """R-precision: the true caption among candidates - 1 mismatched ones."""
    eval_every: int = 500
    """Steps between R-precision reports (0 = only at the end)."""
    patience: int = 0
    """Early stop: 0 trains all `steps` and saves the last pair. N > 0 holds `val_fraction` of `data`
    out as validation images, scores R-precision on them at every report, and stops after N
    reports in a row without a new best (by more than `min_delta`); the best pair is saved, so
    `steps` is the most training the pair gets. When DAMSM locks on to an attribute varies from
    run to run; a fixed step count leaves one run half-trained and wastes time on another."""
    min_delta: float = 0.0
    """Early stop: how much validation R-precision must beat the best so far to count as a new best."""
    val_fraction: float = 0.05
    """Early stop: share of `data` held out as validation images (only when patience > 0). The
    reported R-precision stays on the test images, which choose nothing."""
    seed: int = 0
    """Seed of initialisation, batches and the caption drawn per image."""
    device: str = "cpu"
    """Torch device: cpu, cuda, cuda:1, ..."""

    def check(self, root) -> list[str]:
        out = []
        if not self.data:
            out.append("data is empty; give the packed shard folder (data=path/to/shards)")
        if self.image_size % 16 or self.image_size < 32:
            out.append(f"image_size={self.image_size} must be a multiple of 16, at least 32")
        if self.dim % 2:
            out.append(f"dim={self.dim} must be even (two LSTM directions of dim/2)")
        for k in ("max_len", "word_dim", "dim", "image_ch", "batch_size", "steps"):
            if getattr(self, k) < 1:
                out.append(f"{k}={getattr(self, k)} must be >= 1")
        if self.batch_size < 2:
            out.append(f"batch_size={self.batch_size} must be >= 2 (the batch holds the mismatches)")
        if self.patience < 0:
            out.append(f"patience={self.patience} must be >= 0 (0 = no early stop)")
        if self.patience and not self.eval_every:
            out.append("patience > 0 needs eval_every > 0 (the early stop decides at each report)")
        if self.patience and not 0 < self.val_fraction < 1:
            out.append(f"val_fraction={self.val_fraction} must be in (0, 1) when patience > 0")
        if not 0 < self.test_fraction < 1 and not self.test_data:
            out.append(f"test_fraction={self.test_fraction} must be in (0, 1) when test_data is empty")
        if self.candidates < 2:
            out.append(f"candidates={self.candidates} must be >= 2")
        if self.lr <= 0:
            out.append(f"lr={self.lr} must be > 0")
        return out
