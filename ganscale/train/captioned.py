"""Sample grids with each caption printed under its image (text-to-image runs).

    captioned_grid(images_uint8_NHWC, captions, "grid.png")      # ganscale sample --text ... --out grid.png

During training `CaptionedSamples` writes <run>/plots/captioned_<iter>.png at trainer.plot_every
(and at the end) for captions of the latest real batches, and hands it to the loggers (W&B).
"""

from __future__ import annotations

import math
import os
import textwrap

import lightning as L
import numpy as np
from lightning.pytorch.utilities import rank_zero_only

from ganscale.utils.files import atomic_path

GRID_SIZE = 16
"""Captions of a training-time grid."""


def captioned_grid(images: np.ndarray, captions: list[str], path: str, ncol: int = 0, scale: int = 0) -> str:
    """uint8 images [N, H, W, C] tiled with caption i printed under image i (wrapped) into one PNG."""
    from PIL import Image, ImageDraw, ImageFont

    n, h, w, c = images.shape
    scale = scale or max(1, 128 // max(h, w))  # small images are enlarged so the text fits beside them
    h, w = h * scale, w * scale
    ncol = ncol or max(1, int(math.ceil(math.sqrt(n))))
    font = ImageFont.load_default()
    width = max(12, w // 6)
    wrapped = [textwrap.wrap(t, width)[:4] or [""] for t in captions]
    line = 11
    text_h = line * max(len(x) for x in wrapped) + 4
    rows = int(math.ceil(n / ncol))
    canvas = Image.new("RGB", (ncol * (w + 4), rows * (h + text_h + 4)), "white")
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        r, q = divmod(i, ncol)
        x0, y0 = q * (w + 4) + 2, r * (h + text_h + 4) + 2
        img = Image.fromarray(images[i][..., 0] if c == 1 else images[i]).convert("RGB")
        canvas.paste(img.resize((w, h), Image.Resampling.NEAREST), (x0, y0))
        for k, t in enumerate(wrapped[i]):
            draw.text((x0, y0 + h + 2 + k * line), t, fill="black", font=font)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


class CaptionedSamples(L.Callback):
    """Rank 0 writes a captioned sample grid of the run's generator at trainer.plot_every and at the end."""

    def __init__(self, cfg, run_dir: str):
        self.cfg, self.run_dir = cfg, run_dir

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it, last, every = pl_module.iteration, self.cfg.trainer.max_iters, self.cfg.trainer.plot_every
        if it == last or (every > 0 and it % every == 0):
            self._plot(trainer, pl_module, it)

    @rank_zero_only
    def _plot(self, trainer, pl_module, it: int) -> None:
        from ganscale.games.text2img import sample_text
        from ganscale.metrics.plots import to_uint8_images

        cond, captions = pl_module.condition.pooled_captions(GRID_SIZE)
        if cond is None:
            return
        x = sample_text(pl_module, cond, seed=self.cfg.seed + 12345)
        path = captioned_grid(to_uint8_images(x), captions,
                              os.path.join(self.run_dir, "plots", f"captioned_{it:08d}.png"))
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image("captioned_samples", [path], step=it)
