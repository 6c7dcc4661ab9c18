"""Weights & Biases through Lightning's WandbLogger.

    ganscale train                                # wandb.mode=auto: online with an API key, else offline
    ganscale train wandb.project=gans wandb.tags=[ring,baseline]
    ganscale train wandb.mode=offline             # no network: files only; `wandb sync` later
    ganscale train wandb.mode=disabled            # no W&B at all (WANDB_MODE=disabled does the same)

Everything goes through the trainer's loggers, so W&B receives exactly what the CSV logger
gets, from rank 0 only: loss/D/real, loss/D/fake, loss/D, loss/G, D/real and D/fake (mean D(x)
and D(G(z))), grad_norm/G and grad_norm/D, lr/G and lr/D, perf/samples_per_s, skipped/D and
skipped/G (TrainLogger), metrics/* and the sample plots as images (EvalAndPlot), guard/*
(rollbacks) and the resolved config. Checkpoints become artifacts with `wandb.log_checkpoints`.

The run's files live in <run>/wandb; its id in <run>/wandb_run_id, so a resumed (requeued) run
continues the same W&B run (resume="allow").
"""

from __future__ import annotations

import glob
import netrc
import os
import secrets
import string
from typing import Optional
from urllib.parse import urlparse

from ganscale.utils.files import atomic_write_text
from ganscale.utils.ranks import launched_rank_zero

RUN_ID_FILE = "wandb_run_id"
_OWN_DATA_DIR: Optional[str] = None


def has_api_key() -> bool:
    """An API key in the environment or in the netrc file `wandb login` writes."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


# W&B's own environment switch, in the values its documentation accepts
_ENV_MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline",
              "disabled": "disabled"}


def resolve_mode(mode: str) -> str:
    """The mode a run logs in: `auto` becomes W&B's WANDB_MODE (or disabled for WANDB_DISABLED=true)
    when the environment sets one, else online with an API key and offline without one (so a
    machine without credentials, CI included, never reaches for the network). Explicit modes stay."""
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in _ENV_MODES:
        return _ENV_MODES[env]
    if os.environ.get("WANDB_DISABLED", "").strip().lower() in ("true", "1", "yes"):
        return "disabled"
    return "online" if has_api_key() else "offline"


def run_id(run_dir: str) -> str:
    """The W&B run id of this run directory, created on first use (rank 0 only)."""
    path = os.path.join(run_dir, RUN_ID_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            rid = f.read().strip()
        if rid:
            return rid
    # W&B ids are lowercase alphanumerics; `secrets` leaves the seeded generators alone
    rid = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    atomic_write_text(path, rid + "\n")
    return rid


def sync_hint(run_dir: str) -> str:
    return f"wandb sync {os.path.join(run_dir, 'wandb', 'offline-run-*')}"


def build_wandb_logger(cfg, run_dir: str):
    """A WandbLogger for `cfg.wandb`, or None when disabled."""
    global _OWN_DATA_DIR
    w = cfg.wandb
    mode = resolve_mode(w.mode)
    if mode == "disabled":
        return None
    from lightning.pytorch.loggers import WandbLogger

    from ganscale.config.load import to_dict

    rank0 = launched_rank_zero()  # loggers are built before the process group exists
    if mode == "online" and not has_api_key():
        mode = "offline"
        if rank0:
            print("ganscale: W&B has no API key (set WANDB_API_KEY or run `wandb login`); logging offline "
                  f"into {os.path.join(run_dir, 'wandb')}. Upload it later with: {sync_hint(run_dir)}", flush=True)
    elif mode == "offline" and w.mode == "auto" and rank0:
        print(f"ganscale: W&B logs offline into {os.path.join(run_dir, 'wandb')} (no API key: set WANDB_API_KEY "
              f"or run `wandb login` to log online; wandb.mode=disabled turns W&B off). Upload it later with: "
              f"{sync_hint(run_dir)}", flush=True)
    # Artifact staging copies (checkpoints) go inside the run directory too, unless the user chose a place.
    if os.environ.get("WANDB_DATA_DIR") in (None, _OWN_DATA_DIR):
        _OWN_DATA_DIR = os.path.join(run_dir, "wandb", "data")
        os.environ["WANDB_DATA_DIR"] = _OWN_DATA_DIR
    if rank0:
        os.makedirs(run_dir, exist_ok=True)
    return WandbLogger(
        name=w.name or os.path.basename(os.path.normpath(run_dir)),
        save_dir=run_dir,
        id=run_id(run_dir) if rank0 else None,  # other ranks never create the experiment
        project=w.project,
        entity=w.entity,
        tags=list(w.tags) or None,
        group=w.group,
        mode=mode,
        config=to_dict(cfg),
    )


def wandb_logger(trainer):
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger
    return None


def log_checkpoint_artifact(trainer, path: str, meta: dict, is_best: bool) -> None:
    """Rank 0: upload a complete checkpoint as a `model` artifact of this run."""
    logger = wandb_logger(trainer)
    if logger is None:
        return
    import wandb

    it = int(meta.get("iteration", -1))
    run = logger.experiment
    art = wandb.Artifact(f"checkpoint-{run.id}", type="model",
                         metadata={"iteration": it, "metrics": meta.get("metrics", {})})
    if os.path.isdir(path):
        art.add_dir(path, name=os.path.basename(path))
    else:
        art.add_file(path, name=os.path.basename(path))
    run.log_artifact(art, aliases=["latest", f"iter_{it}"] + (["best"] if is_best else []))


def finish(trainer, run_dir: str, failed: bool = False) -> Optional[str]:
    """Rank 0: close the W&B run (flushes everything before a requeue or exit). Returns the
    `wandb sync` command when the run was offline."""
    logger = wandb_logger(trainer)
    if logger is None or not trainer.is_global_zero:
        return None
    import wandb

    run = wandb.run
    if run is None:
        return None
    offline = run.settings.mode == "offline" or bool(getattr(run, "offline", False))
    run.finish(exit_code=1 if failed else 0)
    if offline and glob.glob(os.path.join(run_dir, "wandb", "offline-run-*")):
        return sync_hint(run_dir)
    return None
