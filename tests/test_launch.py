"""launch/: every script's dry run (what it would run, nothing started or created), and the W&B
sweep configs, whose agents call `ganscale train ... --key=value`."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest
import yaml

from conftest import REPO

LAUNCH = os.path.join(REPO, "launch")
DFGAN_CONFIG = os.path.join(REPO, "configs", "text2img", "cub_dfgan.yaml")


def script(name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.pop("GANSCALE_RUN_DIR", None)
    e.update(env)
    return subprocess.run(["bash", os.path.join(LAUNCH, name), *args], cwd=REPO, env=e, capture_output=True,
                          text=True, timeout=300)


def test_biggan128_on_8_nodes_through_slurm_dry_run(tmp_path):
    r = script("biggan128_slurm.sh", "--dry-run", f"run.root={tmp_path}", "run.name=in128", PARTITION="a100",
               ACCOUNT="proj")
    assert r.returncode == 0, r.stderr[-3000:]
    for line in ("#SBATCH --nodes=8", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --partition=a100", "#SBATCH --account=proj", "#SBATCH --time=3-00:00:00",
                 "#SBATCH --requeue"):
        assert line in r.stdout, line
    srun = next(x for x in r.stdout.splitlines() if x.startswith("srun "))
    assert "configs/imagenet/biggan128.yaml" in srun and "trainer.num_nodes=8 trainer.devices=8" in srun
    assert f"run.root={tmp_path}" in srun
    assert os.listdir(tmp_path) == [], "a dry run creates nothing"


@pytest.mark.skipif(not os.path.isfile(DFGAN_CONFIG),
                    reason="configs/text2img/cub_dfgan.yaml does not exist yet (DF-GAN lands with issue #9)")
def test_dfgan_cub_with_torchrun_dry_run():
    r = script("dfgan_cub_torchrun.sh", "--dry-run")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "# config ok" in r.stdout
    assert "torch.distributed.run --standalone --nnodes=1 --nproc_per_node=8 -m ganscale train " \
           "configs/text2img/cub_dfgan.yaml" in r.stdout


def test_torchrun_script_takes_the_config_path_and_checks_it():
    """The same script with another config (the DF-GAN one need not exist for this)."""
    r = script("dfgan_cub_torchrun.sh", "configs/toy/ring.yaml", "trainer.max_iters=50", "--dry-run", GPUS="2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "# config ok: ring" in r.stdout and "50 iterations" in r.stdout
    cmd = r.stdout.strip().splitlines()[-1]
    assert cmd.endswith("-m ganscale train configs/toy/ring.yaml strategy.name=ddp trainer.accelerator=gpu "
                        "trainer.num_nodes=1 trainer.devices=2 trainer.max_iters=50")
    assert "--nproc_per_node=2" in cmd
    r = script("dfgan_cub_torchrun.sh", "configs/toy/ring.yaml", "trainer.max_iter=50", "--dry-run")
    assert r.returncode != 0 and "max_iters" in r.stderr, "a wrong key is caught by the dry run"
    r = script("dfgan_cub_torchrun.sh", "configs/nowhere.yaml", "--dry-run")
    assert r.returncode == 2 and "configs/nowhere.yaml not found" in r.stderr


def test_toy_benchmark_dry_run():
    r = script("toy_benchmark.sh", "--dry-run", "--seeds", "2", JOBS="3")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "# config ok: ring" in r.stdout and "# config ok: grid" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == f"nice -n 10 {sys.executable} benchmarks/toy_modes.py --jobs 3 --seeds 2"


def test_every_launch_script_is_covered_here():
    tested = {"biggan128_slurm.sh", "dfgan_cub_torchrun.sh", "toy_benchmark.sh"}
    assert {os.path.basename(p) for p in glob.glob(os.path.join(LAUNCH, "*.sh"))} - {"_lib.sh"} == tested


def agent_argv(sweep: dict) -> tuple[list[str], dict]:
    """The `ganscale ...` arguments a W&B agent runs for one draw of `sweep`, and that draw."""
    draw = {}
    for key, spec in sweep["parameters"].items():
        draw[key] = spec["value"] if "value" in spec else spec["values"][-1] if "values" in spec else spec["max"]
    command = sweep["command"]
    assert command[:4] == ["${env}", "${interpreter}", "-m", "ganscale"]
    argv = []
    for item in command[4:]:
        argv += [f"--{k}={v}" for k, v in draw.items()] if item == "${args}" else [item]
    return argv, draw


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(LAUNCH, "sweeps", "*.yaml"))),
                         ids=os.path.basename)
def test_sweep_config_values_reach_the_run_config(path):
    from omegaconf import OmegaConf

    from ganscale.cli import build_parser, sweep_overrides
    from ganscale.cli.train import load_from_args

    sweep = yaml.safe_load(open(path))
    assert sweep["method"] in ("grid", "random", "bayes") and sweep["metric"]["name"].startswith("metrics/")
    argv, draw = agent_argv(sweep)
    args = build_parser().parse_args(sweep_overrides(argv))
    assert args.command == "train"
    cfg = OmegaConf.structured(load_from_args(args.config))
    for key, value in draw.items():
        want = yaml.safe_load(value) if isinstance(value, str) else value
        assert OmegaConf.select(cfg, key) == want, key


def test_sweep_style_arguments_leave_real_options_alone():
    from ganscale.cli import sweep_overrides

    assert sweep_overrides(["train", "--optim.G.lr=1e-4", "--seed=3", "cfg.yaml"]) == \
        ["train", "optim.G.lr=1e-4", "seed=3", "cfg.yaml"]
    assert sweep_overrides(["eval", "run", "--out=m.json", "--eval.num_samples=10"]) == \
        ["eval", "run", "--out=m.json", "eval.num_samples=10"]
    assert sweep_overrides(["sample", "run", "--seed=3"]) == ["sample", "run", "--seed=3"]
