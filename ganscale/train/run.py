"""A training run: setup -> main -> fit.

    ganscale train                                  # default toy job (ring), CPU, a few minutes
    ganscale train configs/toy/grid.yaml optim.D.lr=1e-4 trainer.max_iters=2000

The run directory (<run.root>/<run.name>) receives config.yaml (the resolved config),
checkpoints/, metrics.csv (losses), metrics.jsonl and final_metrics.json (evaluations) and plots/
(samples, and curves.png: the training curves).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch

from ganscale.config.load import save_config
from ganscale.data import GANDataModule, build_datamodule
from ganscale.distributed import trainer_kwargs, world_size_of
from ganscale.distributed.collectives import close_process_group
from ganscale.errors import UserError
from ganscale.ops import after_fit, ops_callbacks, ops_loggers, ops_plugins, prepare_run_dir
from ganscale.ops.checkpoint import list_checkpoints
from ganscale.metrics.callback import EvalAndPlot
from ganscale.train.accel import apply_accel, tf32_flags
from ganscale.train.callbacks import IterationProgressBar, TrainLogger
from ganscale.train.curves import TrainingCurves
from ganscale.train.module import GANModule
from ganscale.train.resume import ScheduleChangeWarning, check_resume_fits
from ganscale.utils.ranks import launched_rank_zero

RUN_DIR_ENV = "GANSCALE_RUN_DIR"
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK")


@dataclass
class Run:
    cfg: object
    run_dir: str
    trainer: L.Trainer
    module: GANModule
    datamodule: GANDataModule
    ckpt_path: Optional[str]


def resolve_run_dir(cfg) -> str:
    # Processes started by a launcher (Lightning's DDP subprocesses, srun tasks) must agree on the
    # directory, so the first process fixes it in the environment they inherit.
    if os.environ.get(RUN_DIR_ENV):
        return os.environ[RUN_DIR_ENV]
    # Processes started by torchrun or srun each resolve it themselves: name it after the job so
    # they agree (a timestamp could differ by a second between them).
    job = os.environ.get("SLURM_JOB_ID") or os.environ.get("TORCHELASTIC_RUN_ID")
    stamp = f"job{job}" if job and job != "none" else time.strftime('%Y%m%d-%H%M%S', time.gmtime())
    name = cfg.run.name or f"{cfg.config_name or 'default'}-{stamp}"
    return os.path.abspath(os.path.join(cfg.run.root, name))


def quiet_known_warnings() -> None:
    """Silence Lightning notices that say nothing about this run."""
    for msg in (r".*srun. command is available.*", r".*Experiment logs directory .* exists and is not empty.*",
                r".*isinstance\(treespec, LeafSpec\).*", r".*`weights_only` was not set.*",
                r".*does not have many workers.*"):
        warnings.filterwarnings("ignore", message=msg)


def build_callbacks(cfg, run_dir: str, game=None) -> list:
    extra = game.callbacks(cfg, run_dir) if game is not None else []  # e.g. the game's own evaluation
    cbs = [TrainLogger(cfg), EvalAndPlot(cfg, run_dir), *extra, TrainingCurves(cfg, run_dir),
           ScheduleChangeWarning(cfg), *ops_callbacks(cfg, run_dir)]
    if cfg.trainer.progress_bar:
        cbs.append(IterationProgressBar())  # redrawn twice a second
    return cbs


def build_trainer(cfg, run_dir: str, callbacks: list) -> L.Trainer:
    kw = trainer_kwargs(cfg)  # strategy, precision, plugins (ganscale.distributed)
    kw["plugins"] = [*kw.get("plugins", []), *ops_plugins(cfg)]  # + atomic checkpoint IO (ganscale.ops)
    return L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        **kw,
        max_steps=-1,
        max_epochs=-1,
        num_sanity_val_steps=0,
        enable_checkpointing=False,  # ops' FullStateCheckpoint counts in ganscale iterations
        enable_progress_bar=cfg.trainer.progress_bar,
        enable_model_summary=False,
        logger=ops_loggers(cfg, run_dir),  # metrics.csv (kept across resumes) and W&B
        callbacks=callbacks,
        deterministic=cfg.trainer.deterministic,
        default_root_dir=run_dir,
        log_every_n_steps=1,
    )


def setup(cfg) -> Run:
    run_dir = resolve_run_dir(cfg)
    os.environ[RUN_DIR_ENV] = run_dir
    if launched_rank_zero():
        prepare_run_dir(run_dir)  # drop what an interrupted checkpoint write left behind
    ckpts = list_checkpoints(os.path.join(run_dir, "checkpoints"))
    if ckpts and cfg.run.resume == "never":
        raise UserError(f"run directory {run_dir} already has checkpoints and run.resume=never; "
                        "choose another run.name or set run.resume=auto to continue it")
    ckpt_path = ckpts[-1] if ckpts and cfg.run.resume == "auto" else None
    quiet_known_warnings()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    module = GANModule(cfg, datamodule.info)
    if ckpt_path and launched_rank_zero():
        check_resume_fits(module, ckpt_path)  # before config.yaml is rewritten: a refused resume loses nothing
    if launched_rank_zero():
        os.makedirs(run_dir, exist_ok=True)
        save_config(cfg, os.path.join(run_dir, "config.yaml"))
    apply_accel(module, cfg)  # trainer.channels_last, trainer.compile
    trainer = build_trainer(cfg, run_dir, build_callbacks(cfg, run_dir, module.game))
    return Run(cfg, run_dir, trainer, module, datamodule, ckpt_path)


def cpu_threads(cfg) -> int:
    """Intra-op threads this run asks for (trainer.num_threads; 0 = auto, see its docstring)."""
    if cfg.trainer.num_threads:
        return cfg.trainer.num_threads
    return 1 if cfg.data.kind == "toy" else torch.get_num_threads()


def fit(run: Run) -> None:
    run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=run.ckpt_path)


def main(cfg) -> Run:
    # The run directory travels to launched children through the environment; a run started in a
    # process that had none (a test, a benchmark worker running several configs) must not leave it
    # behind for the next run of that process.
    # So do the rendezvous variables Lightning's DDP setup writes (WORLD_SIZE, LOCAL_RANK, ...): left
    # behind, the process's next `trainer.devices=2` run would take itself for a launched child and
    # wait for a peer that never comes.
    # The thread count is process-global too: restore it for whatever the process runs next.
    saved_env = {k: os.environ.get(k) for k in (RUN_DIR_ENV, *LAUNCH_ENV)}
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_threads(cfg))
    try:
        with tf32_flags(cfg):
            return _main(cfg)
    finally:
        torch.set_num_threads(threads)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _main(cfg) -> Run:
    owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    run = setup(cfg)
    if run.trainer.is_global_zero:
        resumed = f", resuming from {os.path.basename(run.ckpt_path)}" if run.ckpt_path else ""
        print(f"ganscale: run directory {run.run_dir}{resumed}", flush=True)
        world = world_size_of(cfg)
        print(f"ganscale: global batch {cfg.data.batch_size * world} = per-rank batch {cfg.data.batch_size} "
              f"x world size {world} (strategy {type(run.trainer.strategy).__name__})", flush=True)
    try:
        fit(run)
    except BaseException:
        after_fit(run, failed=True)
        raise
    preempted = after_fit(run) == "preempted"
    if owns_group:  # a caller that set up torch.distributed itself keeps its group
        close_process_group(wait_for_all=not preempted)  # preempted: Slurm is already ending the job
    if not preempted and run.trainer.is_global_zero:
        print(f"ganscale: finished {run.module.iteration} iterations; run directory {run.run_dir}", flush=True)
    return run
