"""`ganscale launch slurm CONFIG.yaml [key=value ...] --nodes N --gpus-per-node G --time T --partition P`

Renders the sbatch script (template: slurm/ganscale.sbatch.in), writes it into the run directory
and submits it; prints the job id. `--dry-run` prints the script instead and creates nothing.

    ganscale launch slurm configs/toy/ring.yaml trainer.max_iters=100000 \\
        --nodes 2 --gpus-per-node 8 --time 24:00:00 --partition gpu --account myproj
    ganscale launch slurm configs/toy/ring.yaml --nodes 2 --gpus-per-node 0 \\
        --cpu-devices-per-node 1 --time 10 --partition debug         # a CPU cluster
"""

from __future__ import annotations

import os

from ganscale.cli.train import split_config_args


def add_parser(sub) -> None:
    p = sub.add_parser("launch", help="launch training on a cluster", description=__doc__)
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    s = targets.add_parser("slurm", help="render and submit an sbatch script", description=__doc__,
                           formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    s.add_argument("config", nargs="*", help="YAML config files and key=value overrides (as for train)")
    s.add_argument("--nodes", type=int, required=True, help="number of nodes")
    s.add_argument("--gpus-per-node", type=int, required=True,
                   help="GPUs per node = tasks per node; 0 for a CPU job (see --cpu-devices-per-node)")
    s.add_argument("--cpu-devices-per-node", type=int, default=None,
                   help="with --gpus-per-node 0: CPU processes per node (default 1)")
    s.add_argument("--time", required=True, help="time limit, e.g. 4:00:00 or 2-00:00:00")
    s.add_argument("--partition", required=True, help="Slurm partition")
    s.add_argument("--account", default=None, help="Slurm account to charge")
    s.add_argument("--cpus-per-task", type=int, default=None, help="CPUs per task (data loading workers)")
    s.add_argument("--mem", default=None, help="memory per node, e.g. 200G")
    s.add_argument("--job-name", default=None, help="job name (default ganscale-<run name>; not 'bash')")
    s.add_argument("--signal-lead", type=int, default=90, dest="signal_lead_s",
                   help="seconds before the time limit at which Slurm sends the preemption signal (default 90)")
    s.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="extra #SBATCH option, repeatable, e.g. --sbatch=--constraint=a100")
    s.add_argument("--template", default=None, help="sbatch template (default slurm/ganscale.sbatch.in)")
    s.add_argument("--dry-run", action="store_true", help="print the script; submit nothing, create nothing")
    s.set_defaults(func=run)


def run(args) -> int:
    from ganscale.errors import UserError
    from ganscale.ops.slurm import TEMPLATE, SlurmJob, render, submit

    if args.cpu_devices_per_node is not None and args.gpus_per_node > 0:
        raise UserError("--cpu-devices-per-node is for CPU jobs (--gpus-per-node 0); "
                        "with GPUs the tasks per node equal --gpus-per-node")
    paths, overrides = split_config_args(args.config)
    job = SlurmJob(
        config_paths=paths, overrides=overrides, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
        time=args.time, partition=args.partition, account=args.account,
        cpu_devices_per_node=args.cpu_devices_per_node or 1, cpus_per_task=args.cpus_per_task,
        mem=args.mem, job_name=args.job_name, signal_lead_s=args.signal_lead_s,
        extra_sbatch=args.sbatch, template=args.template or TEMPLATE,
    )
    script, run_dir = render(job)
    if args.dry_run:
        print(script, end="")
        return 0
    job_id = submit(script, run_dir)
    print(job_id)
    print(f"ganscale: submitted Slurm job {job_id}; run directory {run_dir}; "
          f"log {os.path.join(run_dir, f'slurm-{job_id}.out')}", flush=True)
    return 0
