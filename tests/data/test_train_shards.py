"""Training from shards: the MNIST job end to end, exact resume (one process and 2-rank DDP),
skipped samples logged. (The stream under raw gloo and DeepSpeed process groups: test_dist.py.)"""

import os
import shutil

import numpy as np
import pytest
import torch

from shardkit import REPO, add_shard, cli, good_png, mnist_dir, numbered_images, pack_arrays, run_cli  # noqa: F401

CONFIG = os.path.join(REPO, "configs", "mnist", "mlp_shards.yaml")


def test_mnist_pack_then_train_cli(mnist_dir, tmp_path, cli):
    shards = tmp_path / "mnist"
    assert cli("data", "pack", mnist_dir, shards, "--limit", "3000", "--max-samples", "500").returncode == 0
    r = run_cli("train", CONFIG, f"data.shards.urls={shards}", f"run.root={tmp_path}", "run.name=m",
                "trainer.max_iters=20", "trainer.plot_every=10", "trainer.log_every=10", "trainer.progress_bar=false")
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "m"
    assert {"real.png", "samples_00000010.png", "samples_00000020.png"} <= set(os.listdir(run / "plots"))
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "data/skipped_samples" in header and "data/skipped_shards" in header
    ckpt = torch.load(run / "checkpoints" / "iter_00000020.ckpt", weights_only=False)
    assert ckpt["ganscale"]["info"] == {"kind": "image", "shape": [1, 28, 28], "num_classes": 0}
    state = ckpt["ShardsDataModule"]
    assert state["batches_consumed"] == 20 and len(state["positions"][0]) == 2  # two workers
    out = tmp_path / "s.png"
    assert cli("sample", run, "--num", "16", "--out", out).returncode == 0 and out.stat().st_size > 0


def _train(root, name, shards, max_iters, monkeypatch, *extra):
    from ganscale.config import load_config
    from ganscale.train.run import RUN_DIR_ENV, main

    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    cfg = load_config([CONFIG], [f"data.shards.urls={shards}", f"run.root={root}", f"run.name={name}",
                                 f"trainer.max_iters={max_iters}", "trainer.ckpt_every=0", "trainer.plot_every=0",
                                 "trainer.progress_bar=false", "model.mlp.G.width=32", "model.mlp.D.width=32",
                                 "data.batch_size=8", "data.shards.shuffle_buffer=20", "data.shards.epoch_samples=40",
                                 "data.shards.transform.crop=random", "data.shards.transform.crop_size=6",
                                 "data.shards.transform.flip=true", "gan.n_disc=2", *extra])
    run = main(cfg)
    return {k: v.clone() for k, v in run.module.state_dict().items()}, run


@pytest.mark.timeout(300)
def test_resumed_training_equals_uninterrupted(tmp_path, monkeypatch):
    """Stop at iteration 7 (epochs of 40 / (2 x 8) = 2 batches, so mid-epoch at an odd batch), resume
    from the checkpoint: the weights equal a run that never stopped, which needs the data stream to
    continue exactly (2 workers, block shuffling, random crops and flips)."""
    pack_arrays(tmp_path / "s", numbered_images(60), max_samples=7)
    straight, _ = _train(tmp_path, "a", tmp_path / "s", 12, monkeypatch)
    _train(tmp_path, "b", tmp_path / "s", 7, monkeypatch)
    resumed, run = _train(tmp_path, "b", tmp_path / "s", 12, monkeypatch)
    assert run.ckpt_path.endswith("iter_00000007.ckpt")
    assert straight.keys() == resumed.keys()
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k
    other, _ = _train(tmp_path, "c", tmp_path / "s", 12, monkeypatch, "data.shards.resampled=false")
    assert not torch.equal(other["G.head.weight"], straight["G.head.weight"])  # the data did matter


@pytest.mark.timeout(300)
def test_several_iterations_per_step_equal_one_and_resume_from_shards(tmp_path, monkeypatch):
    """trainer.iters_per_step=3 on shards: the transfer hooks see each iteration's batch (uint8 to
    [-1, 1], the stream position), a run stopped at 7 (steps end at 3, 6, 7) stores position 7, and
    its resume equals one iteration per step without a stop."""
    pack_arrays(tmp_path / "s", numbered_images(60), max_samples=7)
    straight, _ = _train(tmp_path, "a", tmp_path / "s", 12, monkeypatch, "trainer.iters_per_step=1")
    _, cut = _train(tmp_path, "b", tmp_path / "s", 7, monkeypatch, "trainer.iters_per_step=3")
    state = torch.load(tmp_path / "b" / "checkpoints" / "iter_00000007.ckpt", weights_only=False)["ShardsDataModule"]
    assert state["batches_consumed"] == 7
    resumed, run = _train(tmp_path, "b", tmp_path / "s", 12, monkeypatch, "trainer.iters_per_step=3")
    assert run.module.iteration == 12
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k


def test_training_skips_corrupt_samples_and_logs_the_counts(tmp_path, monkeypatch):
    pack_arrays(tmp_path / "s", numbered_images(3), max_samples=3)
    for k in range(4):  # most data is bad: every shard has undecodable and label-less samples
        add_shard(tmp_path / "s", f"bad-{k:06d}.tar", [
            good_png(f"g{k}a"), {"__key__": f"b{k}", "jpg": b"\xff\xd8 truncated", "cls": b"0"},
            good_png(f"g{k}b"), {"__key__": f"n{k}", "png": good_png("x")["png"]}, good_png(f"g{k}c")])
    with pytest.warns(UserWarning, match="skipped sample"):
        _, run = _train(tmp_path, "bad", tmp_path / "s", 6, monkeypatch, "trainer.log_every=3",
                        "data.num_workers=0", "data.shards.labels=true", "data.shards.transform.crop=none",
                        "data.shards.transform.flip=false")
    assert run.module.iteration == 6
    rows = (tmp_path / "bad" / "metrics.csv").read_text().splitlines()
    col = rows[0].split(",").index("data/skipped_samples")
    counts = [float(r.split(",")[col]) for r in rows[1:] if r.split(",")[col]]
    assert counts and counts[-1] > 0 and counts == sorted(counts)


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.timeout(500)
def test_ddp_resume_from_uneven_shards_equals_uninterrupted(tmp_path):
    """2 ranks x 2 workers on uneven shards (16, 16, 16, 2) in split mode: no rank waits on another,
    the checkpoint holds both ranks' positions, and a run resumed from iteration 5 ends with exactly
    the weights of the run that never stopped (so every rank continued its own stream exactly)."""
    pack_arrays(tmp_path / "s", numbered_images(50), np.arange(50) % 5, max_samples=16)
    common = [CONFIG, os.path.join(REPO, "configs", "strategy", "ddp.yaml"), f"data.shards.urls={tmp_path / 's'}",
              f"run.root={tmp_path}", "trainer.devices=2", "trainer.max_iters=10", "trainer.ckpt_every=5",
              "trainer.log_every=5", "trainer.plot_every=0", "trainer.progress_bar=false", "data.batch_size=4",
              "data.shards.resampled=false", "data.shards.shuffle_buffer=20", "model.mlp.G.width=32",
              "model.mlp.D.width=32", "gan.n_disc=2"]
    r = run_cli("train", *common, "run.name=a", timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    ckpts = tmp_path / "a" / "checkpoints"
    state = torch.load(ckpts / "iter_00000010.ckpt", weights_only=False)["ShardsDataModule"]
    assert state["world_size"] == 2 and state["batches_consumed_per_rank"] == [10, 10]
    assert all(row[0] >= 0 for rank in state["positions"] for row in rank)  # every rank, every worker
    os.makedirs(tmp_path / "b" / "checkpoints")
    for name in os.listdir(ckpts):
        if name.startswith("iter_00000005"):
            shutil.copy(ckpts / name, tmp_path / "b" / "checkpoints" / name)
    r = run_cli("train", *common, "run.name=b", timeout=240)
    assert r.returncode == 0 and "resuming from iter_00000005.ckpt" in r.stdout, r.stderr[-3000:]
    assert "cannot replay" not in r.stderr
    a, b = (torch.load(tmp_path / n / "checkpoints" / "iter_00000010.ckpt", weights_only=False)["state_dict"]
            for n in ("a", "b"))
    for k in a:
        assert torch.equal(a[k], b[k]), k

