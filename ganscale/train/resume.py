"""Checks a resumed run against the checkpoint it resumes from.

    ganscale train run.name=r trainer.max_iters=2000   # stopped or finished at 1000 ...
    ganscale train run.name=r trainer.max_iters=4000   # ... resumed longer: warns when a linear or
                                                       # cosine lr schedule stretches with it
    ganscale train run.name=r model.mlp.G.width=64     # networks that do not fit the checkpoint's:
                                                       # one error (exit 2) before anything is written

(The optimizers' betas, eps and weight decay follow the config on resume: GANModule.on_train_start.)
"""

from __future__ import annotations

import os
import warnings

import lightning as L

from ganscale.errors import UserError
from ganscale.train.optim import lr_at

SCHEDULES_TIED_TO_LENGTH = ("linear", "cosine")


def schedule_change_message(stored: dict, cfg, iteration: int) -> str | None:
    """One line when the checkpoint's config (`stored`, plain types) ran for another
    `trainer.max_iters` and a player's learning rate follows a schedule defined by it; else None."""
    old = stored.get("trainer", {}).get("max_iters")
    new = cfg.trainer.max_iters
    if old is None or int(old) == new:
        return None
    tied = [(name, getattr(cfg.optim, name)) for name in ("G", "D")
            if getattr(cfg.optim, name).schedule in SCHEDULES_TIED_TO_LENGTH]
    if not tied:
        return None
    lrs = ", ".join(f"optim.{name}.schedule={o.schedule} lr at iteration {iteration}: "
                    f"{lr_at(o, iteration, new):.3g} (was {lr_at(o, iteration, int(old)):.3g})" for name, o in tied)
    return (f"resuming with trainer.max_iters={new} from a checkpoint trained with trainer.max_iters={old}: "
            f"the learning-rate schedule is defined by max_iters, so it changes with it ({lrs})")


class ScheduleChangeWarning(L.Callback):
    """Warns on resume when `trainer.max_iters` differs from the checkpoint's and a schedule tied
    to it (optim.*.schedule linear or cosine) therefore decays on another timetable."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.message: str | None = None

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        meta = checkpoint.get("ganscale") or {}
        self.message = schedule_change_message(meta.get("config") or {}, self.cfg, int(meta.get("iteration", 0)))
        if self.message and trainer.is_global_zero:
            warnings.warn(self.message)  # the location shown is this file, not Lightning's hook caller


def check_weights_fit(own: dict, stored: dict) -> None:
    """One UserError naming what a checkpoint's weights lack, add or shape differently from the
    networks the config builds (instead of torch's strict-load traceback mid-fit)."""
    missing = [k for k in own if k not in stored]
    unexpected = [k for k in stored if k not in own]
    shapes = [f"{k} {tuple(stored[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in stored and hasattr(stored[k], "shape") and stored[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        return

    def few(keys: list) -> str:
        return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

    parts = [f"{label}: {few(keys)}" for label, keys in
             (("missing", missing), ("not in this model", unexpected), ("other shapes (checkpoint vs config)", shapes))
             if keys]
    raise UserError("the checkpoint's networks do not fit the ones this config builds (" + "; ".join(parts)
                    + "): resume with the config the run was trained with (model.*, gan.ema.*, the game), or "
                    "start a new run (another run.name, or run.resume=never)")


def check_resume_fits(module, ckpt_path: str) -> None:
    """Before a resumed run writes anything: the checkpoint's weights fit the networks this config
    builds (GANModule.adapt_stored_weights), else one UserError. DeepSpeed's checkpoint folders are
    left to its engines."""
    if not os.path.isfile(ckpt_path):
        return
    from ganscale.utils.safe_load import load_checkpoint_file

    # memory-mapped: only names and shapes are read here; Lightning reads the tensors once, in fit
    weights = load_checkpoint_file(ckpt_path, mmap=True).get("state_dict")
    if isinstance(weights, dict):
        module.adapt_stored_weights(weights)
