"""`ganscale export RUN --out DIR`: a trained run as the folder people share (see pretrained.py).

    ganscale export runs/mnist --out exported/mnist                  # G_ema + config.json + README.md
    ganscale export runs/mnist --out exported/mnist --with-g --with-d
"""

from __future__ import annotations

import json
import os
from typing import Optional

from ganscale.errors import UserError
from ganscale.export.card import model_card
from ganscale.export.pretrained import CONFIG_FILE, D_FILE, FORMAT, G_FILE, WEIGHTS_FILE, save_weights

GRID_FILE = "samples.png"
GRID_SEED = 0


def run_metrics(ckpt: str, iteration: int) -> dict:
    """final_metrics.json of the run directory when it belongs to this checkpoint (same iteration), else {}."""
    folder = os.path.dirname(os.path.abspath(ckpt))
    run_dir = os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else folder
    path = os.path.join(run_dir, "final_metrics.json")
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            metrics = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); fix or remove it and export again") from None
    return metrics if isinstance(metrics, dict) and metrics.get("iter") == iteration else {}


def write_grid(module, path: str, n: int = 64) -> Optional[str]:
    """The sample grid of the card: images tiled, or 2D points over the true modes (None for other data)."""
    if module.info.kind != "image" and module.cfg.data.kind != "toy":
        return None
    x = module.sample(n if module.info.kind == "image" else 2000, seed=GRID_SEED)
    if module.info.kind == "image":
        from ganscale.metrics.plots import image_grid, to_uint8_images

        return image_grid(to_uint8_images(x), path)
    from ganscale.data.toy import mixture_means
    from ganscale.metrics.plots import scatter_plot

    return scatter_plot(x, mixture_means(module.cfg.data.toy), path, title=f"seed {GRID_SEED}")


def export_run(source: str, out: str, with_g: bool = False, with_d: bool = False) -> dict[str, str]:
    """Write the export of `source` (run directory or checkpoint) into `out`; returns {file: what it holds}."""
    from ganscale.config import to_dict
    from ganscale.train.restore import find_checkpoint, load_module

    ckpt = find_checkpoint(source)
    if os.path.isdir(ckpt):
        raise UserError(f"{source} is already an exported folder; copy it, or export the run it came from")
    module = load_module(ckpt)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file; pass a folder")
    os.makedirs(out, exist_ok=True)
    has_ema = module.G_ema is not None
    files = {WEIGHTS_FILE: "G_ema, the generator to sample from" if has_ema else "G (the run had no EMA)"}
    save_weights(module.sampler, os.path.join(out, WEIGHTS_FILE))
    if with_g:
        save_weights(module.G, os.path.join(out, G_FILE))
        files[G_FILE] = "G, the raw generator (the one trained by the optimizer)"
    if with_d:
        save_weights(module.D, os.path.join(out, D_FILE))
        files[D_FILE] = "D, the discriminator"
    metrics = run_metrics(ckpt, module.iteration)
    info = module.info
    config = {
        "format": FORMAT,
        "library_name": "ganscale",
        "model_type": module.cfg.model.arch,
        "weights": files,
        "ganscale": {"config": to_dict(module.cfg), "iteration": module.iteration,
                     "info": info.as_dict()},
        "metrics": metrics,
    }
    from ganscale.utils.files import atomic_write_text

    atomic_write_text(os.path.join(out, CONFIG_FILE), json.dumps(config, indent=2) + "\n")
    grid = write_grid(module, os.path.join(out, GRID_FILE))
    grid = os.path.basename(grid) if grid else None
    atomic_write_text(os.path.join(out, "README.md"), model_card(module.cfg, info, module.iteration, metrics, files, grid))
    return files
