"""Train the DAMSM text/image encoder pair from packed shards (`ganscale text train`).

    ganscale text train configs/text/digits_damsm.yaml data=/data/digits-train test_data=/data/digits-test

Each step draws `batch_size` images and one caption per image (seeded), encodes both, and
minimises sentence loss + word_weight x word loss, each in both directions (ganscale.text.damsm).
Adam with AttnGAN's settings (lr 2e-3, betas 0.5/0.999, text-encoder gradient clip 0.25).
R-precision on the held-out images (one seeded caption each) is reported every `eval_every` steps
and at the end; the pair is saved to `out` (ganscale.text.pair).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ganscale.text.config import TextEncoderConfig
from ganscale.text.damsm import candidates_used, matching_loss, negatives_mask, r_precision
from ganscale.text.dataset import CaptionedImages
from ganscale.text.pair import EncoderPair, save_encoder


@dataclass
class TrainResult:
    r_precision: float
    """Top-1 rate on the held-out images at the end."""
    history: list[dict] = field(default_factory=list)
    """One entry per report: step, loss, r_precision, seconds."""
    num_train: int = 0
    num_test: int = 0
    candidates: int = 0
    """Captions each R-precision ranks (the true one + mismatches): `candidates`, or fewer when the
    held-out set has fewer captions of other groups."""


def to_float_images(images: torch.Tensor, device) -> torch.Tensor:
    return images.to(device).float().div_(127.5).sub_(1.0)


@torch.no_grad()
def evaluate(pair: EncoderPair, data: CaptionedImages, cfg: TextEncoderConfig, batch: int = 256) -> float:
    """R-precision of the pair on `data` (one caption per image drawn with a fixed seed)."""
    was = pair.training
    pair.eval()
    g = torch.Generator().manual_seed(cfg.seed + 1)
    imgs, sens = [], []
    for s in range(0, len(data), batch):
        b = data.batch(torch.arange(s, min(s + batch, len(data))), g)
        imgs.append(pair.image(to_float_images(b["images"], cfg.device))[1])
        sens.append(pair.text(b["caption_ids"].to(cfg.device), b["caption_lengths"].to(cfg.device)).sentence)
    pair.train(was)
    return r_precision(torch.cat(imgs).cpu(), torch.cat(sens).cpu(), data.groups, cfg.candidates, generator=g)


def damsm_loss(pair: EncoderPair, batch: dict, cfg: TextEncoderConfig) -> tuple[torch.Tensor, dict]:
    regions, glob = pair.image(to_float_images(batch["images"], cfg.device))
    ids, lengths = batch["caption_ids"].to(cfg.device), batch["caption_lengths"].to(cfg.device)
    text = pair.text(ids, lengths)
    excluded = negatives_mask(batch["groups"].to(cfg.device), ids)
    loss, parts = matching_loss(regions, glob, text.words, text.sentence, text.mask, excluded, cfg.gamma1,
                                cfg.gamma2, cfg.gamma3, cfg.word_weight)
    return loss, {k: float(v) for k, v in parts.items()}


def split(cfg: TextEncoderConfig) -> tuple[CaptionedImages, CaptionedImages]:
    train = CaptionedImages.load(cfg.data, cfg.image_size, cfg.max_len)
    if cfg.test_data:
        return train, CaptionedImages.load(cfg.test_data, cfg.image_size, cfg.max_len, vocab=train.vocab)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed))
    n_test = max(2, int(round(cfg.test_fraction * len(train))))
    return train.subset(order[n_test:]), train.subset(order[:n_test])


def train_encoder(cfg: TextEncoderConfig, log: Callable[[str], None] = print) -> TrainResult:
    torch.manual_seed(cfg.seed)
    train, test = split(cfg)
    pair = EncoderPair(cfg, train.vocab).to(cfg.device)
    opt = torch.optim.Adam(pair.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    g = torch.Generator().manual_seed(cfg.seed)
    bs = min(cfg.batch_size, len(train))
    result = TrainResult(0.0, num_train=len(train), num_test=len(test),
                         candidates=candidates_used(test.groups, cfg.candidates))
    if result.candidates < cfg.candidates:
        log(f"ganscale text: note: the held-out set has too few images of other groups for {cfg.candidates} "
            f"candidates; R-precision ranks among {result.candidates} (chance {1 / result.candidates:.3f})")
    start, perm, pos = time.time(), torch.randperm(len(train), generator=g), 0
    pair.train()
    for step in range(1, cfg.steps + 1):
        if pos + bs > len(train):  # epochs without replacement
            perm, pos = torch.randperm(len(train), generator=g), 0
        batch = train.batch(perm[pos:pos + bs], g)
        pos += bs
        loss, parts = damsm_loss(pair, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(pair.text.parameters(), cfg.clip)
        opt.step()
        if step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0):
            rp = evaluate(pair, test, cfg)
            entry = {"step": step, "loss": round(float(loss.detach()), 4), **{k: round(v, 4) for k, v in parts.items()},
                     "r_precision": rp, "seconds": round(time.time() - start, 1)}
            result.history.append(entry)
            log(f"ganscale text: step {step}/{cfg.steps} loss {entry['loss']} R-precision {rp:.3f} "
                f"({entry['seconds']} s)")
            result.r_precision = rp
    save_encoder(pair, cfg.out)
    return result
