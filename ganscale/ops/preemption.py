"""Preemption: a signal asks the run to checkpoint and get out of the way.

    #SBATCH --signal=SIGUSR1@90          Slurm sends SIGUSR1 to every task 90 s before the time limit
    scancel --signal=USR1 JOBID          ... or now, by hand (what the tests do)

1. The handler only sets a flag: no I/O and no collectives inside a signal handler (it runs
   between two arbitrary bytecodes, possibly inside a collective of the training step).
2. At the next iteration boundary every rank contributes its flag to one all-reduce (`any`),
   so all ranks stop at the same iteration even when the signal reached them at different times.
3. All ranks write a checkpoint together, training stops, W&B is closed.
4. Rank 0 requeues the job (`scontrol requeue $SLURM_JOB_ID`) and every process exits 0. The
   requeued job runs the same script: same run directory, `run.resume=auto` picks the newest
   complete checkpoint, the W&B run id is read from the run directory.

Outside Slurm the same signal stops the run after the checkpoint; running the same command again
resumes it.
"""

from __future__ import annotations

import os
import subprocess
from typing import Optional

import lightning as L

from ganscale.ops import signals
from ganscale.ops.config import signal_number


def slurm_job_id() -> Optional[str]:
    """The id `scontrol requeue` wants (array jobs: ARRAYID_TASKID), or None outside a Slurm job."""
    array_id, task_id = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_id and task_id:
        return f"{array_id}_{task_id}"
    return os.environ.get("SLURM_JOB_ID")


def under_slurm_job() -> bool:
    """True inside a Slurm batch job or step that is not an interactive shell."""
    return bool(slurm_job_id()) and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")


class Preemption(L.Callback):
    """Installs the flag-only handler, agrees across ranks, checkpoints and stops."""

    def __init__(self, cfg, checkpointer):
        self.cfg = cfg
        self.checkpointer = checkpointer
        self.signum = signal_number(cfg.slurm.signal)
        self.stopped_at: Optional[int] = None
        self._checked = 0  # the iteration of the last agreement
        self.checkpoint: Optional[str] = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        # `ganscale train` installed it before the imports already; a run started from Python
        # gets it here. DataLoader workers forked later inherit it (Slurm signals every process).
        signals.install(self.signum)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        signals.clear()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        if it - self._checked < self.cfg.slurm.check_every:  # a step may hold several iterations
            return
        self._checked = it
        stop = trainer.strategy.reduce_boolean_decision(signals.requested(), all=False)  # collective: any rank
        if not stop or it >= self.cfg.trainer.max_iters:
            return  # at max_iters the run ends anyway, with its final checkpoint
        self.checkpoint = self.checkpointer.save(trainer, pl_module)
        self.stopped_at = it
        trainer.should_stop = True


def requeue() -> str:
    """Rank 0, after training stopped: requeue this Slurm job. Returns a line for the log."""
    job = slurm_job_id()
    r = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if r.returncode != 0:
        return (f"`scontrol requeue {job}` failed ({(r.stderr or r.stdout).strip()}); "
                f"resubmit the same sbatch script to resume")
    # Slurm keeps a requeued batch job pending for about two minutes (Reason=BeginTime) before
    # it may start again; that wait is the scheduler's, not ours.
    return f"requeued Slurm job {job}"
