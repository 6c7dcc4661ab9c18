"""`ganscale launch slurm` rendering, preemption by signal, and a real Slurm job on the
two-node test cluster (slurm/cluster) that is signalled, requeues itself and finishes."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ganscale.cli import main as cli_main
from ganscale.ops.checkpoint import store

from opshelpers import FAST, REPO, cli_env, fast_overrides, load_ckpt, train_in_process, wandb_offline_summary  # noqa: F401 (fixtures too)

LAUNCH = ["--nodes", "2", "--gpus-per-node", "4", "--time", "1:00:00", "--partition", "gpu"]


def test_dry_run_prints_a_complete_sbatch_script(tmp_path, capsys):
    rc = cli_main(["launch", "slurm", "trainer.max_iters=500", f"run.root={tmp_path}", "run.name=dry", *LAUNCH,
                   "--account", "proj", "--cpus-per-task", "6", "--sbatch=--constraint=h100", "--dry-run"])
    script = capsys.readouterr().out
    assert rc == 0
    run_dir = os.path.join(str(tmp_path), "dry")
    lines = script.splitlines()
    for expected in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                     "#SBATCH --time=1:00:00", "#SBATCH --partition=gpu", "#SBATCH --account=proj",
                     "#SBATCH --cpus-per-task=6", "#SBATCH --signal=SIGUSR1@90", "#SBATCH --requeue",
                     "#SBATCH --open-mode=append", f"#SBATCH --output={run_dir}/slurm-%j.out",
                     "#SBATCH --constraint=h100", f"export GANSCALE_RUN_DIR={run_dir}"):
        assert expected in lines, expected
    name = next(ln.split("=", 1)[1] for ln in lines if ln.startswith("#SBATCH --job-name="))
    assert name == "ganscale-dry"
    assert any(ln.startswith("export MASTER_ADDR=") for ln in lines)
    assert any(ln.startswith("export MASTER_PORT=") for ln in lines)
    srun = next(ln for ln in lines if ln.startswith("srun "))
    for arg in ("-m ganscale train", "trainer.max_iters=500", "trainer.num_nodes=2", "trainer.devices=4",
                "trainer.accelerator=gpu", f"run.root={tmp_path}", "run.name=dry"):
        assert arg in srun, arg
    assert "{{" not in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0  # valid shell
    assert not os.path.exists(run_dir)  # a dry run creates nothing


def test_cpu_job_and_launch_errors(tmp_path, capsys):
    rc = cli_main(["launch", "slurm", f"run.root={tmp_path}", "--nodes", "2", "--gpus-per-node", "0",
                   "--cpu-devices-per-node", "3", "--time", "10", "--partition", "debug", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and "#SBATCH --ntasks-per-node=3" in out and "--gpus-per-node" not in out
    assert "trainer.accelerator=cpu" in out and "trainer.devices=3" in out

    rc = cli_main(["launch", "slurm", "trainer.max_iterz=5", *LAUNCH, "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown key 'trainer.max_iterz'" in err and "Traceback" not in err
    rc = cli_main(["launch", "slurm", "--nodes", "0", "--gpus-per-node", "1", "--time", "4h", "--partition", "p",
                   "--job-name", "bash", "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and "--nodes 0" in err and "'4h' is not a Slurm time" in err and "'bash'" in err
    rc = cli_main(["launch", "slurm", *LAUNCH, "--template", str(tmp_path / "missing.sbatch"), "--dry-run"])
    assert rc == 2 and "--template" in capsys.readouterr().err
    rc = cli_main(["launch", "slurm", "slurm.signal=SIGTERM", *LAUNCH, "--dry-run"])
    assert rc == 2 and "handled by Lightning itself" in capsys.readouterr().err
    rc = cli_main(["launch", "slurm", "slurm.signal=USR2", f"run.root={tmp_path}", *LAUNCH, "--dry-run"])
    assert rc == 0 and "#SBATCH --signal=SIGUSR2@90" in capsys.readouterr().out.splitlines()


def _wait(predicate, timeout: float, what: str, poll: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _signal_a_training(tmp_path, name: str, args: list[str], ready, what: str) -> tuple[int, str, str]:
    """Start `ganscale train` (outside any Slurm job), wait for `ready(proc)`, send SIGUSR1, wait."""
    env = cli_env()
    for k in [k for k in env if k.startswith("SLURM_")]:
        env.pop(k)
    proc = subprocess.Popen([sys.executable, "-m", "ganscale", "train", *FAST, f"run.root={tmp_path}", f"run.name={name}",
                             *args], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: ready(proc) or proc.poll() is not None, 120, what)
        proc.send_signal(signal.SIGUSR1)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def test_signal_outside_slurm_checkpoints_stops_and_the_same_command_resumes(tmp_path, train_in_process, capsys):
    args = ["trainer.max_iters=300", "trainer.ckpt_every=20"]
    ckpt_dir = str(tmp_path / "sig" / "checkpoints")
    rc, out, err = _signal_a_training(tmp_path, "sig", args, lambda p: store.list_checkpoints(ckpt_dir),
                                      "the first checkpoint")
    assert rc == 0, err[-2000:]
    m = re.search(r"stopped by SIGUSR1 at iteration (\d+); checkpoint iter_(\d+)\.ckpt; run the same command", out)
    assert m and m.group(1) == str(int(m.group(2))), out
    stopped = int(m.group(1))
    assert 20 <= stopped < 300
    assert store.latest_checkpoint(ckpt_dir).endswith(f"iter_{stopped:08d}.ckpt")
    capsys.readouterr()
    resumed = train_in_process("sig", *args)
    assert f"resuming from iter_{stopped:08d}.ckpt" in capsys.readouterr().out
    assert resumed.module.iteration == 300


def _catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(mask >> (signum - 1) & 1)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc to see signal handlers")
def test_signal_during_start_up_stops_at_the_first_iteration(tmp_path):
    # `ganscale train` routes the signal to the flag before importing torch and Lightning
    # (one iteration per step: with trainer.iters_per_step=K it is the end of the first step)
    rc, out, err = _signal_a_training(tmp_path, "early", ["trainer.max_iters=50", "trainer.iters_per_step=1"],
                                      lambda p: _catches(p.pid, signal.SIGUSR1), "the signal handler")
    assert rc == 0, err[-2000:]
    assert "stopped by SIGUSR1 at iteration 1; checkpoint iter_00000001.ckpt" in out, out


# ----------------------------------------------------------------------------- the real cluster
CLUSTER = os.path.join(REPO, "slurm", "cluster")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running two-node test cluster (slurm/cluster/start.sh); SLURM_CONF for its clients."""
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "scancel") if not shutil.which(b)]
    if missing:
        pytest.skip(f"Slurm test cluster unavailable: {', '.join(missing)} not installed "
                    "(install with: bash slurm/cluster/install.sh, as root)")
    if os.geteuid() != 0:
        pytest.skip("Slurm test cluster unavailable: slurmd must run as root to start jobs")
    state = str(tmp_path_factory.mktemp("slurm"))
    r = subprocess.run(["bash", os.path.join(CLUSTER, "start.sh"), state], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        subprocess.run(["bash", os.path.join(CLUSTER, "stop.sh"), state], capture_output=True, timeout=60)
        pytest.skip(f"Slurm test cluster daemons did not start (start.sh exit {r.returncode}): "
                    f"{(r.stderr or r.stdout)[-1500:]}")
    try:
        yield os.path.join(state, "slurm.conf")
    finally:
        subprocess.run(["bash", os.path.join(CLUSTER, "stop.sh"), state], capture_output=True, timeout=60)


def _multi_process_training_available() -> bool:
    # Several ranks need the per-player distributed strategy (ganscale.distributed.trainer_kwargs);
    # without it the job uses one of the two nodes.
    try:
        return hasattr(importlib.import_module("ganscale.distributed"), "trainer_kwargs")
    except ImportError:
        return False


def _job_field(job: str, name: str, env: dict) -> str:
    r = subprocess.run(["scontrol", "show", "job", "-o", job], env=env, capture_output=True, text=True)
    m = re.search(rf"\b{name}=(\S+)", r.stdout)
    return m.group(1) if m else ""


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_slurm_job_is_signalled_requeues_resumes_and_finishes(slurm_cluster, tmp_path):
    env = cli_env()
    for k in [k for k in env if k.startswith("SLURM_")]:
        env.pop(k)
    env["SLURM_CONF"] = slurm_cluster
    nodes = 2 if _multi_process_training_available() else 1
    max_iters = 300
    args = [*FAST, f"run.root={tmp_path}", "run.name=sj", f"trainer.max_iters={max_iters}", "trainer.ckpt_every=20",
            "trainer.log_every=20", "wandb.mode=offline"]
    r = subprocess.run([sys.executable, "-m", "ganscale", "launch", "slurm", *args, "--nodes", str(nodes),
                        "--gpus-per-node", "0", "--time", "10", "--partition", "debug"],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    job = r.stdout.split()[0]
    assert job.isdigit(), r.stdout
    run_dir, ckpt_dir = str(tmp_path / "sj"), str(tmp_path / "sj" / "checkpoints")
    log = os.path.join(run_dir, f"slurm-{job}.out")

    def log_text() -> str:
        return open(log).read() if os.path.exists(log) else ""

    try:
        _wait(lambda: store.list_checkpoints(ckpt_dir) or _job_field(job, "JobState", env) in ("FAILED", "COMPLETED"),
              150, "the job's first checkpoint")
        assert _job_field(job, "JobState", env) == "RUNNING", log_text()[-3000:]
        subprocess.run(["scancel", "--signal=USR1", job], env=env, check=True, timeout=30)
        _wait(lambda: f"requeued Slurm job {job}" in log_text(), 120, "the requeue")
        _wait(lambda: _job_field(job, "JobState", env) == "PENDING", 60, "the requeued job to be pending")
        # Test-only: Slurm holds a requeued batch job for ~2 minutes before it may start again.
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, check=True, timeout=30)
        _wait(lambda: _job_field(job, "JobState", env) in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"),
              180, "the job to finish", poll=0.5)
    finally:
        if _job_field(job, "JobState", env) in ("RUNNING", "PENDING", "COMPLETING"):
            subprocess.run(["scancel", job], env=env, timeout=30)
    text = log_text()
    assert _job_field(job, "JobState", env) == "COMPLETED", text[-4000:]
    assert _job_field(job, "Restarts", env) == "1"
    assert _job_field(job, "ExitCode", env) == "0:0"
    assert f"job {job} (restart 0)" in text and f"job {job} (restart 1)" in text
    m = re.search(r"stopped by SIGUSR1 at iteration (\d+); checkpoint iter_\d+\.ckpt; requeued Slurm job", text)
    assert m, text[-4000:]
    stopped = int(m.group(1))
    assert 20 <= stopped < max_iters
    assert f"resuming from iter_{stopped:08d}.ckpt" in text
    assert f"finished {max_iters} iterations" in text
    assert not re.search(r"task \d+: (Terminated|Exited with exit code|Killed)", text), text[-4000:]  # clean exits
    final = store.latest_checkpoint(ckpt_dir)
    assert final.endswith(f"iter_{max_iters:08d}.ckpt") and store.read_marker(final)["iteration"] == max_iters
    assert len(load_ckpt(final)["ganscale_ops"]["rng"]) == nodes  # one RNG state per rank
    w = wandb_offline_summary(run_dir)  # both attempts logged into the same W&B run
    assert len(w["run_ids"]) == 2 and len(set(w["run_ids"])) == 1
    assert "loss/G" in w["history_keys"]
