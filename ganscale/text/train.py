"""Train the DAMSM text/image encoder pair from packed shards (`ganscale text train`).

    ganscale text train configs/text/digits_damsm.yaml data=/data/digits-train test_data=/data/digits-test

Each step draws `batch_size` images and one caption per image (seeded), encodes both, and
minimises sentence loss + word_weight x word loss, each in both directions (ganscale.text.damsm).
Adam with AttnGAN's settings (lr 2e-3, betas 0.5/0.999, text-encoder gradient clip 0.25).
R-precision on the held-out images (one seeded caption each) is reported every `eval_every` steps
and at the end; the pair is saved to `out` (ganscale.text.pair). With `patience` > 0 a validation
slice of the training shards decides when to stop and which pair is saved (the best one there);
the test images only report.
"""

from __future__ import annotations

import copy
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
    num_val: int = 0
    """Validation images held out of the training shards for the early stop (0 without one)."""
    steps: int = 0
    """Optimizer steps taken (fewer than the config's when the early stop ends training)."""
    best_step: int = 0
    """Step of the saved pair: the best validation R-precision, or the last step without early stop."""
    val_r_precision: float | None = None
    """Validation R-precision of the saved pair (None without early stop)."""
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


def _carve(data: CaptionedImages, fraction: float, seed: int) -> tuple[CaptionedImages, CaptionedImages]:
    """(the rest, a seeded `fraction` of the images, at least 2)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n = max(2, int(round(fraction * len(data))))
    return data.subset(order[n:]), data.subset(order[:n])


def split(cfg: TextEncoderConfig) -> tuple[CaptionedImages, CaptionedImages | None, CaptionedImages]:
    """(train, validation or None, test): test is `test_data` or a `test_fraction` of `data`; the
    validation images (early stop only) come out of what is left for training."""
    train = CaptionedImages.load(cfg.data, cfg.image_size, cfg.max_len)
    if cfg.test_data:
        test = CaptionedImages.load(cfg.test_data, cfg.image_size, cfg.max_len, vocab=train.vocab)
    else:
        train, test = _carve(train, cfg.test_fraction, cfg.seed)
    val = None
    if cfg.patience:
        train, val = _carve(train, cfg.val_fraction, cfg.seed + 2)
    return train, val, test


def train_encoder(cfg: TextEncoderConfig, log: Callable[[str], None] = print) -> TrainResult:
    torch.manual_seed(cfg.seed)
    train, val, test = split(cfg)
    pair = EncoderPair(cfg, train.vocab).to(cfg.device)
    opt = torch.optim.Adam(pair.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    g = torch.Generator().manual_seed(cfg.seed)
    bs = min(cfg.batch_size, len(train))
    result = TrainResult(0.0, num_train=len(train), num_test=len(test), num_val=len(val) if val else 0,
                         candidates=candidates_used(test.groups, cfg.candidates))
    if result.candidates < cfg.candidates:
        log(f"ganscale text: note: the held-out set has too few images of other groups for {cfg.candidates} "
            f"candidates; R-precision ranks among {result.candidates} (chance {1 / result.candidates:.3f})")
    best_state, stale = None, 0
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
        result.steps = step
        if not (step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0)):
            continue
        rp = evaluate(pair, test, cfg)
        entry = {"step": step, "loss": round(float(loss.detach()), 4), **{k: round(v, 4) for k, v in parts.items()},
                 "r_precision": rp, "seconds": round(time.time() - start, 1)}
        note = ""
        if val is not None:
            entry["val_r_precision"] = vr = evaluate(pair, val, cfg)
            if result.val_r_precision is None or vr > result.val_r_precision + cfg.min_delta:
                best_state, stale = copy.deepcopy(pair.state_dict()), 0
                result.val_r_precision, result.best_step, result.r_precision = vr, step, rp
            else:
                stale += 1
            note = f" validation {vr:.3f} (best {result.val_r_precision:.3f} at step {result.best_step})"
        else:
            result.r_precision, result.best_step = rp, step
        result.history.append(entry)
        log(f"ganscale text: step {step}/{cfg.steps} loss {entry['loss']} R-precision {rp:.3f}{note} "
            f"({entry['seconds']} s)")
        if val is not None and stale >= cfg.patience:
            log(f"ganscale text: early stop: no better validation R-precision for {stale} reports; "
                f"saving the pair of step {result.best_step}")
            break
    if best_state is not None:
        pair.load_state_dict(best_state)
    save_encoder(pair, cfg.out)
    return result
