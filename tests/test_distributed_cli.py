"""Distributed training from the command line, on CPU with gloo: DDP through Lightning's launcher,
2 "nodes" x 1 process through torchrun, DeepSpeed ZeRO-2 with checkpoints, resume and conversion."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import REPO, cli, free_port

HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
TOY = ["configs/toy/ring.yaml", "trainer.accelerator=cpu", "trainer.progress_bar=false", "data.batch_size=64",
       "trainer.eval_every=0", "trainer.plot_every=0", "trainer.log_every=10"]

pytestmark = [pytest.mark.distributed, pytest.mark.slow, pytest.mark.timeout(600)]


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return r.stdout


def metrics_rows(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def test_ddp_two_processes_from_the_cli_then_resume(run_root):
    args = [*TOY, "configs/strategy/ddp.yaml", "trainer.devices=2", "trainer.ckpt_every=20",
            f"run.root={run_root}", "run.name=ddp"]
    out = ok(cli("train", *args, "trainer.max_iters=40"))
    assert "global batch 128 = per-rank batch 64 x world size 2" in out
    run_dir = os.path.join(run_root, "ddp")
    assert os.listdir(run_root) == ["ddp"], "both processes must use the run directory of rank 0"
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == ["iter_00000020.ckpt", "iter_00000020.ckpt.complete",
                                                                        "iter_00000040.ckpt", "iter_00000040.ckpt.complete"]
    rows = [r for r in metrics_rows(run_dir) if r.get("loss/D")]
    assert [int(float(r["iter"])) for r in rows] == [10, 20, 30, 40], "rank 0 alone writes the metrics"
    assert {r["batch/global"] for r in rows} == {"128"}
    assert os.path.isfile(os.path.join(run_dir, "final_metrics.json"))
    out = ok(cli("train", *args, "trainer.max_iters=60"))
    assert "resuming from iter_00000040.ckpt" in out and "finished 60 iterations" in out


def test_two_nodes_one_process_each_with_torchrun(run_root):
    """torchrun --nnodes=2 with a local rendezvous: node ranks 0 and 1 on this machine."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("GANSCALE_RUN_DIR", None)
    procs = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", f"--node_rank={n}",
         "--master_addr=127.0.0.1", f"--master_port={port}", "--rdzv-id=mn42", "-m", "ganscale", "train", *TOY,
         "trainer.num_nodes=2", "trainer.devices=1", "strategy.name=ddp", "trainer.max_iters=100",
         "trainer.log_every=50", f"run.root={run_root}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for n in (0, 1)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    # both nodes name the run after the job (not a timestamp that could differ between them)
    assert os.listdir(run_root) == ["ring-jobmn42"]
    run_dir = os.path.join(run_root, "ring-jobmn42")
    assert "finished 100 iterations" in outs[0] and "global batch 128" in outs[0]
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == ["iter_00000100.ckpt",
                                                                      "iter_00000100.ckpt.complete"]
    final = os.path.join(run_dir, "final_metrics.json")
    assert os.path.isfile(final) and '"iter": 100' in open(final).read()


@pytest.mark.skipif(not HAS_DEEPSPEED, reason="deepspeed is not installed (pip install 'ganscale[deepspeed]')")
def test_deepspeed_checkpoint_resume_conversion_and_world_size_check(run_root, tmp_path):
    args = [*TOY, "configs/strategy/deepspeed_zero2.yaml", "trainer.devices=2", "trainer.ckpt_every=20",
            "trainer.max_iters=40", f"run.root={run_root}"]
    ok(cli("train", *args, "run.name=full"))
    full = os.path.join(run_root, "full", "checkpoints")
    assert sorted(os.listdir(full)) == ["iter_00000020.ckpt", "iter_00000020.ckpt.complete",
                                        "iter_00000020.ckpt.deepspeed", "iter_00000040.ckpt",
                                        "iter_00000040.ckpt.complete", "iter_00000040.ckpt.deepspeed"]
    assert sorted(os.listdir(os.path.join(full, "iter_00000040.ckpt.deepspeed", "D"))) == [
        "mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt"]

    # an interrupted run (only the iteration-20 checkpoint survives) resumes both engines exactly
    part = os.path.join(run_root, "part")
    shutil.copytree(os.path.join(run_root, "full"), part)
    os.remove(os.path.join(part, "checkpoints", "iter_00000040.ckpt"))
    os.remove(os.path.join(part, "checkpoints", "iter_00000040.ckpt.complete"))
    shutil.rmtree(os.path.join(part, "checkpoints", "iter_00000040.ckpt.deepspeed"))
    os.remove(os.path.join(part, "metrics.csv"))
    out = ok(cli("train", *args, "run.name=part"))
    assert "resuming from iter_00000020.ckpt" in out
    a = torch.load(os.path.join(full, "iter_00000040.ckpt"), weights_only=False)
    b = torch.load(os.path.join(part, "checkpoints", "iter_00000040.ckpt"), weights_only=False)
    assert a["ganscale"]["iteration"] == b["ganscale"]["iteration"] == 40
    for k in a["state_dict"]:
        torch.testing.assert_close(b["state_dict"][k], a["state_dict"][k], atol=1e-6, rtol=1e-5, msg=k)

    # resuming on another world size is refused with the way out
    r = cli("train", *[x for x in args if x != "trainer.devices=2"], "trainer.devices=1", "trainer.max_iters=60",
            "run.name=full")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "holds ZeRO shards of 2 ranks but this run has 1" in r.stderr

    # a plain fp32 checkpoint from the shards; `ganscale sample` reads it
    from ganscale.cli import main as ganscale_main
    from ganscale.distributed.convert import main as convert_main

    plain = str(tmp_path / "plain.ckpt")
    assert convert_main([os.path.join(full, "iter_00000040.ckpt"), plain]) == 0
    c = torch.load(plain, weights_only=False)
    assert "ganscale_deepspeed" not in c and sorted(c["state_dict"]) == sorted(a["state_dict"])
    for k, v in a["state_dict"].items():  # an fp32 run: the master weights are the weights
        torch.testing.assert_close(c["state_dict"][k], v.float() if v.is_floating_point() else v, msg=k)
    assert ganscale_main(["sample", plain, "--num", "16", "--out", str(tmp_path / "s.npy")]) == 0
    assert convert_main([plain, str(tmp_path / "again.ckpt")]) == 2, "a plain checkpoint is refused clearly"
