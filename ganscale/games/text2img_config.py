"""Typed settings of the text-to-image games (`game.text`): the frozen text encoder and the loss weights.

    ganscale train configs/text2img/digits_dfgan.yaml game.text.encoder=encoders/digits.safetensors
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TextGameConfig:
    encoder: str = ""
    """The text encoder file written by `ganscale text train` (frozen during GAN training; its
    vocabulary also reads `ganscale sample --text`). Empty: precomputed caption embeddings in the
    shards (`caption_emb`, `ganscale data embed`) of width model.<arch>.text_dim."""
    kl_weight: float = 2.0
    """Weight of the conditioning-augmentation KL in G's loss (StackGAN, StackGAN++; 2.0 as in
    StackGAN's coco_s1.yml and StackGAN-v2's defaults)."""
    wrong_weight: float = 0.5
    """Weight of the wrong pairs (real image, mismatched caption) in D's loss."""
    mismatch: str = "shift"
    """How the wrong pairs' captions are chosen from the global batch: `shift` (a random shift of
    the batch, as StackGAN and DF-GAN do) or `nearest` (for each image, a caption among the
    `mismatch_k` other captions whose sentence vectors lie nearest its own, identical captions
    excluded: hard negatives that keep most of what the caption says and change a detail, so that
    D must read every word to reject them)."""
    mismatch_k: int = 1
    """With mismatch=nearest: draw the wrong caption uniformly among this many nearest (1: the
    nearest). A larger k softens the hard negatives and the cost of a paraphrase of the same content
    being drawn as a mismatch."""
    fake_weight: float = 0.5
    """Weight of the fake pairs (G(z, c), c) in D's loss (real + 1/2 wrong + 1/2 fake: StackGAN, DF-GAN)."""
    ma_gp_k: float = 2.0
    """DF-GAN's matching-aware gradient penalty: weight k (0 turns it off)."""
    ma_gp_p: float = 6.0
    """DF-GAN's matching-aware gradient penalty: power p of the gradient norm."""
    damsm_weight: float = 0.0
    """AttnGAN's DAMSM term in G's loss: weight lambda of the matching loss (sentence and word level,
    both ways) between G's images and their captions, through the frozen image encoder of `encoder`
    (AttnGAN: 5 on CUB, 50 on COCO). 0 turns it off, as in StackGAN and DF-GAN."""
    uncond_weight: float = 1.0
    """StackGAN++: weight of the unconditional terms beside the conditional ones (COEFF.UNCOND_LOSS)."""
    colour_weight: float = 0.0
    """StackGAN++: colour-consistency weight between neighbouring scales (0 for text in StackGAN-v2)."""
    stage1: str = ""
    """StackGAN Stage-II: the Stage-I run (directory or .ckpt) whose generator is loaded, frozen, into G.stage1."""

    def check(self, root) -> list[str]:
        out = [f"{k}={getattr(self, k)} must be >= 0" for k in
               ("kl_weight", "wrong_weight", "fake_weight", "ma_gp_k", "damsm_weight", "uncond_weight",
                "colour_weight")
               if getattr(self, k) < 0]
        if self.damsm_weight > 0 and not self.encoder:
            out.append(f"damsm_weight={self.damsm_weight} needs the image encoder of a trained DAMSM pair: set "
                       "encoder=FILE (ganscale text train), or damsm_weight=0 with precomputed embeddings")
        if self.mismatch not in ("shift", "nearest"):
            out.append(f"mismatch={self.mismatch!r} must be 'shift' or 'nearest'")
        if self.mismatch_k < 1:
            out.append(f"mismatch_k={self.mismatch_k} must be >= 1")
        if self.ma_gp_p <= 0:
            out.append(f"ma_gp_p={self.ma_gp_p} must be > 0")
        return out
