"""Checks a resumed run against the checkpoint it resumes from.

    ganscale train run.name=r trainer.max_iters=2000   # stopped or finished at 1000 ...
    ganscale train run.name=r trainer.max_iters=4000   # ... resumed longer: warns when a linear or
                                                       # cosine lr schedule stretches with it
"""

from __future__ import annotations

import warnings

import lightning as L

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
