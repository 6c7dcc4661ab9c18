"""Render and submit the sbatch script of a training run (`ganscale launch slurm`).

The template is slurm/ganscale.sbatch.in at the top of the repository (`--template` for another
one); `{{name}}` placeholders are filled in here, and every one must be known. The run directory
is fixed at submission (run.root/run.name, both absolute in the script), created, and receives
the rendered script (job.sbatch) and the Slurm log (slurm-<jobid>.out), so requeued jobs resume
where the first one stopped.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

from ganscale.errors import UserError
from ganscale.utils.files import atomic_write_text

TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "slurm", "ganscale.sbatch.in")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$|^\d+-\d+$|^(infinite|unlimited)$", re.IGNORECASE)
RESERVED_JOB_NAMES = ("bash", "interactive")  # Lightning then ignores Slurm's ranks


@dataclass
class SlurmJob:
    """What `ganscale launch slurm` was asked for."""

    config_paths: list[str]
    overrides: list[str]
    nodes: int
    gpus_per_node: int
    time: str
    partition: Optional[str] = None
    account: Optional[str] = None
    cpu_devices_per_node: int = 1
    """Processes per node when gpus_per_node is 0 (CPU clusters and the test cluster)."""
    cpus_per_task: Optional[int] = None
    mem: Optional[str] = None
    job_name: Optional[str] = None
    signal_lead_s: int = 90
    extra_sbatch: list[str] = field(default_factory=list)
    template: str = TEMPLATE

    @property
    def devices_per_node(self) -> int:
        return self.gpus_per_node if self.gpus_per_node > 0 else self.cpu_devices_per_node

    def problems(self) -> list[str]:
        out = []
        if self.nodes < 1:
            out.append(f"--nodes {self.nodes}: ask for at least 1 node")
        if self.gpus_per_node < 0:
            out.append(f"--gpus-per-node {self.gpus_per_node} must be >= 0 (0 = a CPU job)")
        if self.cpu_devices_per_node < 1:
            out.append(f"--cpu-devices-per-node {self.cpu_devices_per_node} must be >= 1")
        if not _TIME.match(self.time):
            out.append(f"--time {self.time!r} is not a Slurm time; use e.g. 30, 4:00:00 or 2-00:00:00")
        if self.signal_lead_s < 1:
            out.append(f"--signal-lead {self.signal_lead_s} must be >= 1 second")
        if self.job_name is not None and (self.job_name in RESERVED_JOB_NAMES or not self.job_name.strip()):
            out.append(f"--job-name {self.job_name!r}: Lightning treats jobs named bash/interactive as "
                       "interactive shells and ignores their ranks; choose another name")
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            out.append(f"--cpus-per-task {self.cpus_per_task} must be >= 1")
        if not os.path.isfile(self.template):
            out.append(f"template {self.template} does not exist; pass --template PATH "
                       "(the repository ships slurm/ganscale.sbatch.in)")
        return out


def fill(template: str, values: dict[str, str]) -> str:
    """Replace every {{name}}; an unknown name is an error (a template/renderer mismatch)."""
    missing = sorted({m for m in _PLACEHOLDER.findall(template) if m not in values})
    if missing:
        raise UserError(f"the sbatch template uses unknown placeholders {missing}; "
                        f"known: {', '.join(sorted(values))}")
    text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line for line in text.split("\n") if line != "@@drop@@")) + "\n"


def _line(text: Optional[str]) -> str:
    return text if text else "@@drop@@"


def resolve(job: SlurmJob):
    """Load and validate the config with the job's overrides; fix the run directory.
    Returns (cfg, run_dir, config_args) where config_args is what the tasks run with."""
    from ganscale.cli.train import load_from_args

    problems = job.problems()
    if problems:
        raise UserError("cannot launch:\n" + "\n".join(f"  - {p}" for p in problems))
    paths = [os.path.abspath(p) for p in job.config_paths]
    forced = [
        f"trainer.num_nodes={job.nodes}",
        f"trainer.devices={job.devices_per_node}",
        f"trainer.accelerator={'gpu' if job.gpus_per_node > 0 else 'cpu'}",
    ]
    cfg = load_from_args(paths + job.overrides + forced)  # raises ConfigError listing every problem
    name = cfg.run.name or f"{cfg.config_name or 'default'}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    root = os.path.abspath(cfg.run.root)
    run_dir = os.path.join(root, name)
    pinned = [f"run.root={root}", f"run.name={name}"]
    passed = [o for o in job.overrides if not o.startswith(("run.root=", "run.name="))]
    return cfg, run_dir, paths + passed + forced + pinned


def render(job: SlurmJob, python: str = sys.executable) -> tuple[str, str]:
    """(script, run_dir)."""
    cfg, run_dir, args = resolve(job)
    with open(job.template) as f:
        template = f.read()
    resources = []
    if job.gpus_per_node > 0:
        resources.append(f"#SBATCH --gpus-per-node={job.gpus_per_node}")
    if job.cpus_per_task:
        resources.append(f"#SBATCH --cpus-per-task={job.cpus_per_task}")
    if job.mem:
        resources.append(f"#SBATCH --mem={job.mem}")
    env = []
    if os.environ.get("PYTHONPATH"):  # sbatch exports the environment; say so explicitly for the record
        env.append(f"export PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])}")
    from ganscale.ops.config import signal_number

    values = {
        "job_name": job.job_name or f"ganscale-{os.path.basename(run_dir)}",
        "nodes": str(job.nodes),
        "tasks_per_node": str(job.devices_per_node),
        "resource_lines": _line("\n".join(resources)),
        "time": job.time,
        "partition_line": _line(job.partition and f"#SBATCH --partition={job.partition}"),
        "account_line": _line(job.account and f"#SBATCH --account={job.account}"),
        "signal": signal.Signals(signal_number(cfg.slurm.signal)).name,
        "signal_lead_s": str(job.signal_lead_s),
        "run_dir": run_dir,
        "run_dir_q": shlex.quote(run_dir),
        "extra_lines": _line("\n".join(f"#SBATCH {a}" for a in job.extra_sbatch)),
        "env_lines": _line("\n".join(env)),
        "command": " ".join(shlex.quote(a) for a in [python, "-m", "ganscale", "train", *args]),
    }
    if any(c.isspace() for c in run_dir):
        raise UserError(f"run directory {run_dir!r} contains whitespace, which #SBATCH --output cannot take; "
                        "choose run.root/run.name without spaces")
    return fill(template, values), run_dir


def submit(script: str, run_dir: str) -> str:
    """Write <run>/job.sbatch, `sbatch --parsable` it, return the job id."""
    if subprocess.run(["which", "sbatch"], capture_output=True).returncode != 0:
        raise UserError("sbatch not found: run this on a Slurm login node (or start the test cluster: "
                        "slurm/cluster/start.sh) or use --dry-run to see the script")
    path = os.path.join(run_dir, "job.sbatch")
    atomic_write_text(path, script)  # also creates run_dir: Slurm does not create the folder of --output
    r = subprocess.run(["sbatch", "--parsable", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"sbatch rejected {path}: {(r.stderr or r.stdout).strip()}")
    return r.stdout.strip().split(";")[0]
