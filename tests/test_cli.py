"""End to end from the command line: train leaves a complete run directory; sample is seeded."""

import json
import os

import numpy as np
import pytest

from conftest import cli

TRAIN = ["trainer.max_iters=120", "trainer.eval_every=60", "trainer.plot_every=60", "trainer.ckpt_every=60",
         "trainer.log_every=20", "trainer.progress_bar=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    r = cli("train", "configs/toy/ring.yaml", f"run.root={root}", "run.name=a", *TRAIN)
    assert r.returncode == 0, r.stderr[-3000:]
    return root, r


def test_train_leaves_a_complete_run_directory(trained):
    root, r = trained
    run = os.path.join(root, "a")
    assert f"run directory {run}" in r.stdout
    files = set(os.listdir(run))
    assert {"config.yaml", "checkpoints", "metrics.csv", "metrics.jsonl", "final_metrics.json", "plots"} <= files
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == [  # each with its completion marker
        "iter_00000060.ckpt", "iter_00000060.ckpt.complete", "iter_00000120.ckpt", "iter_00000120.ckpt.complete"]
    assert sorted(os.listdir(os.path.join(run, "plots"))) == [
        "curves.png", "samples_00000060.png", "samples_00000120.png"]
    final = json.load(open(os.path.join(run, "final_metrics.json")))
    assert final["iter"] == 120 and final["num_modes"] == 8
    assert {"modes", "hq_fraction", "kl"} <= set(final)
    header = open(os.path.join(run, "metrics.csv")).readline()
    for key in ("loss/D/real", "loss/D/fake", "loss/G", "grad_norm/D", "perf/samples_per_s"):
        assert key in header
    resolved = open(os.path.join(run, "config.yaml")).read()
    assert "max_iters: 120" in resolved and "mixture: ring" in resolved and "config_name: ring" in resolved


def test_same_config_and_seed_give_the_same_metrics(trained, tmp_path):
    root, _ = trained
    r = cli("train", "configs/toy/ring.yaml", f"run.root={tmp_path}", "run.name=b", *TRAIN)
    assert r.returncode == 0, r.stderr[-3000:]
    a = json.load(open(os.path.join(root, "a", "final_metrics.json")))
    b = json.load(open(os.path.join(tmp_path, "b", "final_metrics.json")))
    assert a == b


def test_sample_is_seeded_and_shaped(trained, tmp_path):
    root, _ = trained
    outs = []
    for name, seed in (("s1", 7), ("s2", 7), ("s3", 8)):
        out = tmp_path / f"{name}.npy"
        r = cli("sample", os.path.join(root, "a"), "--num", "300", "--out", str(out), "--seed", str(seed))
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(np.load(out))
    assert outs[0].shape == (300, 2) and outs[0].dtype == np.float32
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])
    # a checkpoint file works as well as a run directory
    ckpt = os.path.join(root, "a", "checkpoints", "iter_00000120.ckpt")
    r = cli("sample", ckpt, "--num", "300", "--out", str(tmp_path / "c.npy"), "--seed", "7")
    assert r.returncode == 0 and np.array_equal(np.load(tmp_path / "c.npy"), outs[0])


def test_sample_bad_source_exits_2(tmp_path):
    r = cli("sample", str(tmp_path / "nope"), "--out", str(tmp_path / "x.npy"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = cli("sample", str(tmp_path), "--out", str(tmp_path / "x.npy"))
    assert r.returncode == 2 and "no checkpoint" in r.stderr


def test_resume_continues_to_max_iters(trained, tmp_path):
    root, _ = trained
    r = cli("train", "configs/toy/ring.yaml", f"run.root={root}", "run.name=a", *TRAIN[1:], "trainer.max_iters=180")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from iter_00000120.ckpt" in r.stdout and "finished 180 iterations" in r.stdout


def test_resume_with_networks_that_do_not_fit_is_one_clear_error(trained, tmp_path):
    import shutil

    root, _ = trained
    shutil.copytree(os.path.join(root, "a"), tmp_path / "a")  # the module's run stays as it was
    before = sorted(os.listdir(tmp_path / "a" / "checkpoints"))
    r = cli("train", "configs/toy/ring.yaml", f"run.root={tmp_path}", "run.name=a", *TRAIN[1:], "trainer.max_iters=180",
            "model.mlp.G.width=64")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "do not fit the ones this config builds" in r.stderr and "other shapes" in r.stderr
    assert "(128, 2) vs (64, 2)" in r.stderr
    assert "run.resume=never" in r.stderr
    assert sorted(os.listdir(tmp_path / "a" / "checkpoints")) == before  # nothing lost
    assert open(tmp_path / "a" / "config.yaml").read() == open(os.path.join(root, "a", "config.yaml")).read()


def test_console_entry_point_and_help():
    from ganscale.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    r = cli("train", "--help")
    assert r.returncode == 0 and "key=value" in r.stdout


def test_in_process_runs_do_not_share_a_run_directory(tmp_path):
    import os as _os

    from ganscale.config import load_config
    from ganscale.train.run import RUN_DIR_ENV, main

    _os.environ.pop(RUN_DIR_ENV, None)
    dirs = []
    for name in ("one", "two"):
        cfg = load_config([], [f"run.root={tmp_path}", f"run.name={name}", "trainer.max_iters=2",
                               "trainer.progress_bar=false"])
        dirs.append(main(cfg).run_dir)
    assert [_os.path.basename(d) for d in dirs] == ["one", "two"]
    assert RUN_DIR_ENV not in _os.environ
