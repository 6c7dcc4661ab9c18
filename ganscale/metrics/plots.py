"""Figures of samples saved into the run directory (matplotlib without a display, PIL).

    scatter_plot(samples, means, path)     2D samples over the true mode means (toy data)
    image_grid(to_uint8_images(x), path)   images tiled into one PNG
    captioned_grid(to_uint8_images(x), captions, path)   images with caption i printed under image i
                                           (text-to-image runs, `ganscale sample --text ... --out grid.png`)
"""

from __future__ import annotations

import math
import os
import textwrap
from typing import Optional

import torch


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 [0, 255], the rounding every image output uses (feature
    extractors, sample grids, `ganscale sample`)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def scatter_plot(samples: torch.Tensor, means: torch.Tensor, path: str, title: Optional[str] = None) -> str:
    """Generated 2D samples over the true mode means."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    s = samples.detach().cpu().numpy()
    m = means.cpu().numpy()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.4, color="tab:blue", label="G samples")
    ax.scatter(m[:, 0], m[:, 1], s=40, marker="x", color="tab:red", label="true means")
    span = float(abs(m).max()) * 1.5 + 0.5
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def to_uint8_images(x: torch.Tensor):
    """[-1, 1] float N x C x H x W -> uint8 N x H x W x C (numpy)."""
    return to_uint8(x).permute(0, 2, 3, 1).numpy()


def image_grid(images, path: str, nrow: int | None = None) -> str:
    """uint8 N x H x W x C images tiled into one PNG."""
    import math

    import numpy as np
    from PIL import Image

    n, h, w, c = images.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol = int(math.ceil(n / nrow))
    grid = np.zeros((ncol * h, nrow * w, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = images[i]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid[..., 0] if c == 1 else grid).save(path)
    return path


def captioned_grid(images, captions: list[str], path: str, ncol: int = 0, scale: int = 0) -> str:
    """uint8 images [N, H, W, C] tiled with caption i printed under image i (wrapped) into one PNG."""
    from PIL import Image, ImageDraw, ImageFont

    from ganscale.utils.files import atomic_path

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
