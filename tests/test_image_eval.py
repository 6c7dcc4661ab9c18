"""Image evaluation end to end on packed MNIST shards: the digit classifier command, the
evaluator (metrics react to sample quality, reference statistics cached by key), distributed
evaluation equal to single-process, and train -> eval -> sample from the CLI."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, cli
from ganscale.config import load_config
from ganscale.data import build_datamodule
from ganscale.metrics.classifier import load_classifier
from ganscale.metrics.evaluator import ImageEvaluator

MNIST = os.environ.get("GANSCALE_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
MNIST = os.path.join(MNIST, "mnist")
pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(MNIST, "train-images-idx3-ubyte.gz")),
                                reason=f"MNIST IDX files not found in {MNIST} (set GANSCALE_SHARED_DATA)")


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mnist") / "shards")
    r = cli("data", "pack", MNIST, out, "--limit", "600", "--max-samples", "200")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def classifier(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("clf") / "mnist.pt")
    r = cli("classifier", "train", "--data", MNIST, "--out", out, "--epochs", "1", "--limit", "3000",
            "--batch-size", "64")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout.strip().splitlines()[-1])


def run_main(capsys, *args):
    """`ganscale ARGS` in this process (no interpreter start-up): (exit code, stdout, stderr)."""
    from ganscale.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_classifier_command_trains_saves_and_tests(classifier, capsys):
    path, report = classifier
    assert report["test_accuracy"] > 0.9  # 4000 images, one epoch; the full run reaches >= 0.99
    model = load_classifier(path)
    assert model.test_accuracy == report["test_accuracy"]
    code, out, err = run_main(capsys, "classifier", "test", "--data", MNIST, "--model", path)
    assert code == 0 and json.loads(out)["test_accuracy"] == pytest.approx(report["test_accuracy"])
    code, out, err = run_main(capsys, "classifier", "test", "--data", MNIST, "--model", path + ".missing")
    assert code == 2 and "ganscale classifier train" in err


def _cfg(shards, clf, *extra):
    return load_config([os.path.join(REPO, "configs", "mnist", "dcgan.yaml")], [
        f"data.shards.urls={shards}", f"eval.classifier_path={clf}", "eval.num_samples=300",
        "eval.num_reference=400", "eval.batch_size=64", "eval.pr_num_samples=300", "eval.kid_subset_size=100",
        "eval.kid_subsets=10", "eval.is_splits=2", *extra])


def _real_pool(dm):
    xs, ys = [], []
    for b in dm.reference_batches(100):
        xs.append(b["x"])
        ys.append(b["y"])
    return torch.cat(xs), torch.cat(ys)


def _real_sampler(x, y_all):
    """A 'generator' that returns real digits of the requested classes (seeded)."""
    def sample(n, seed=0, y=None, truncation=None):
        g = torch.Generator().manual_seed(seed)
        idx = [int(torch.nonzero(y_all == int(c)).flatten()[torch.randint(int((y_all == int(c)).sum()), (1,),
                                                                            generator=g)]) for c in y]
        return x[idx]
    return sample


def _noise_sampler(shape):
    def sample(n, seed=0, y=None, truncation=None):
        return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return sample


def test_metrics_tell_real_digits_from_noise_and_cache_the_reference(shards, classifier, tmp_path):
    cfg = _cfg(shards, classifier[0])
    dm = build_datamodule(cfg)
    ev = ImageEvaluator(cfg, dm.info, dm, run_dir=str(tmp_path))
    x, y = _real_pool(dm)
    good = ev.evaluate(_real_sampler(x, y))
    bad = ev.evaluate(_noise_sampler(dm.info.shape))
    assert set(good) >= {"fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "class_acc", "class_acc_min"}
    assert good["num_samples"] == 300 and good["num_reference"] == 400
    assert good["fid"] < 0.1 * bad["fid"]
    assert good["kid"] < 0.1 * bad["kid"]
    assert good["precision"] > 0.8 and good["recall"] > 0.8
    assert bad["recall"] < 0.1  # noise covers none of the digit manifold
    blank = ev.evaluate(lambda n, **kw: -torch.ones(n, *dm.info.shape))
    assert blank["precision"] < 0.1 and blank["recall"] < 0.1 and blank["is"] == pytest.approx(1.0)
    assert good["class_acc"] > 0.85 and bad["class_acc"] < 0.4
    assert good["is"] > bad["is"]
    # the reference statistics were written once, next to the shards, keyed by data + extractor
    path = ev.cache_path()
    assert os.path.isfile(path) and path.startswith(os.path.join(shards, "refstats"))
    dm2 = build_datamodule(cfg)
    dm2.reference_batches = lambda *a: (_ for _ in ()).throw(AssertionError("recomputed the reference"))
    again = ImageEvaluator(cfg, dm2.info, dm2).evaluate(_real_sampler(x, y))
    assert again["fid"] == pytest.approx(good["fid"], rel=1e-9)
    other = ImageEvaluator(_cfg(shards, classifier[0], "eval.num_reference=300"), dm.info, dm)
    assert other.cache_path() != path


def test_inception_extractor_without_weights_is_a_user_error(shards, classifier):
    from ganscale.errors import UserError

    cfg = _cfg(shards, classifier[0], "eval.extractor=inception", "eval.metrics=[fid]",
               "eval.inception_path=/nowhere/weights.pth")
    dm = build_datamodule(cfg)
    with pytest.raises(UserError, match="weights-inception-2015-12-05-6726825d.pth"):
        ImageEvaluator(cfg, dm.info, dm)


WORKER = r"""
import json, os, sys, torch, torch.distributed as dist
sys.path.insert(0, {tests!r})
from test_image_eval import _cfg, _noise_sampler
from ganscale.data import build_datamodule
from ganscale.metrics.evaluator import ImageEvaluator
rank, world = int(sys.argv[1]), int(sys.argv[2])
if world > 1:
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:{port}", rank=rank, world_size=world)
cfg = _cfg({shards!r}, {clf!r}, "eval.cache_dir={cache}" + str(world), "eval.num_samples=290")
dm = build_datamodule(cfg)
m = ImageEvaluator(cfg, dm.info, dm).evaluate(_noise_sampler(dm.info.shape))
json.dump(m, open({out!r} + f"-{{world}}-{{rank}}.json", "w"))
"""


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.timeout(600)
def test_distributed_evaluation_equals_single_process(shards, classifier, tmp_path):
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "worker.py"
    out = str(tmp_path / "m")
    script.write_text(WORKER.format(tests=os.path.dirname(__file__), port=port, shards=shards, clf=classifier[0],
                                    cache=str(tmp_path / "cache"), out=out))
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2"], env=env) for r in range(2)]
    single = subprocess.run([sys.executable, str(script), "0", "1"], env=env, timeout=300)
    assert [p.wait(timeout=300) for p in procs] == [0, 0] and single.returncode == 0
    one = json.load(open(f"{out}-1-0.json"))
    r0, r1 = json.load(open(f"{out}-2-0.json")), json.load(open(f"{out}-2-1.json"))
    assert r0 == r1  # every rank holds the same numbers
    for k, v in one.items():
        assert r0[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k  # 2 ranks x their share == 1 process
    # each rank computed part of the reference: both runs wrote the same statistics
    assert os.listdir(str(tmp_path / "cache1")) == os.listdir(str(tmp_path / "cache2"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_train_eval_sample_from_the_cli(shards, classifier, tmp_path, capsys):
    root = str(tmp_path / "runs")
    # two ranks (Lightning DDP on gloo): the periodic evaluation runs on both, each generating its share
    r = cli("train", os.path.join(REPO, "configs", "mnist", "dcgan.yaml"),
            os.path.join(REPO, "configs", "strategy", "ddp.yaml"), "trainer.devices=2", "trainer.accelerator=cpu",
            f"data.shards.urls={shards}",
            f"eval.classifier_path={classifier[0]}", "model.dcgan.G_ch=8", "model.dcgan.D_ch=8", "data.batch_size=16",
            "data.num_workers=0", "trainer.max_iters=12", "trainer.eval_every=6", "trainer.plot_every=12",
            "trainer.ckpt_every=6", "trainer.log_every=6", "gan.ema.start_iter=0", "eval.num_samples=120",
            "eval.num_reference=150", "eval.pr_num_samples=100", "eval.kid_subset_size=50", "eval.kid_subsets=5",
            "eval.is_splits=2", f"run.root={root}", "run.name=mnist", "trainer.progress_bar=false")
    assert r.returncode == 0, r.stderr[-3000:]
    run = os.path.join(root, "mnist")
    lines = [json.loads(x) for x in open(os.path.join(run, "metrics.jsonl"))]
    assert [x["iter"] for x in lines] == [6, 12]
    assert all({"fid", "kid", "is", "precision", "recall", "class_acc"} <= set(x) for x in lines)
    from ganscale.ops.checkpoint import store

    ckpt_dir = os.path.join(run, "checkpoints")
    ckpt = torch.load(store.checkpoint_path(ckpt_dir, 12), weights_only=False)
    assert ckpt["ganscale_ops"]["metrics"]["fid"] == pytest.approx(lines[1]["fid"])  # kept with the checkpoint
    best = min(lines, key=lambda x: x["fid"])  # the config keeps the best checkpoint by FID
    assert store.best_checkpoint(ckpt_dir, "fid", "min") == store.checkpoint_path(ckpt_dir, best["iter"])
    assert os.path.isfile(os.path.join(run, "plots", "samples_00000012.png"))

    # the same evaluation offline, in one process, on the final checkpoint: the numbers of the run
    code, _, err = run_main(capsys, "eval", run)
    assert code == 0, err
    out = json.load(open(os.path.join(run, "eval", "iter_00000012.json")))
    assert out["iter"] == 12 and out["num_samples"] == 120
    for k in ("fid", "kid", "is", "precision", "recall", "class_acc"):
        assert out[k] == pytest.approx(lines[1][k], rel=1e-5, abs=1e-6), k
    code, _, err = run_main(capsys, "eval", run, "eval.num_samples=100")
    assert code == 0 and json.load(open(os.path.join(run, "eval", "iter_00000012.json")))["num_samples"] == 100
    # eval.ema=false scores the raw G: other numbers than G_ema's, the same on a second evaluation
    for name in ("raw1.json", "raw2.json"):
        code, _, err = run_main(capsys, "eval", run, "eval.ema=false", "--out", str(tmp_path / name))
        assert code == 0, err
    raw = json.load(open(tmp_path / "raw1.json"))
    assert raw["fid"] == json.load(open(tmp_path / "raw2.json"))["fid"]
    assert raw["fid"] != pytest.approx(lines[1]["fid"], rel=1e-5)
    code, _, err = run_main(capsys, "eval", run, "eval.extractor=inception", "eval.metrics=[fid]",
                            "eval.inception_path=/nowhere/w.pth")
    assert code == 2 and "weights-inception-2015-12-05-6726825d.pth" in err

    def sample(out, *extra):
        code, _, err = run_main(capsys, "sample", run, "--out", str(tmp_path / out), *extra)
        return code, err

    for path in ("a.npy", "b.npy"):
        assert sample(path, "--num", "12", "--class", "3", "--truncation", "0.5", "--seed", "1")[0] == 0
    x = np.load(tmp_path / "a.npy")
    assert x.shape == (12, 28, 28, 1) and x.dtype == np.uint8 and np.array_equal(x, np.load(tmp_path / "b.npy"))
    assert sample("c.npy", "--num", "12", "--class", "7", "--truncation", "0.5", "--seed", "1")[0] == 0
    assert not np.array_equal(x, np.load(tmp_path / "c.npy"))
    assert sample("grid.png", "--num", "6", "--class", "0,1,2")[0] == 0 and os.path.getsize(tmp_path / "grid.png") > 0
    assert sample("pngs", "--num", "5")[0] == 0
    assert sorted(os.listdir(tmp_path / "pngs")) == [f"{i:06d}.png" for i in range(5)]
    code, err = sample("x.npy", "--num", "5", "--class", "12")
    assert code == 2 and "0..9" in err

    # BigGAN's standing statistics: G's BatchNorm statistics re-estimated before sampling / evaluating
    for path in ("s1.npy", "s2.npy"):
        assert sample(path, "--num", "12", "--class", "3", "--truncation", "0.5", "--seed", "1",
                      "--standing-stats", "3")[0] == 0
    standing = np.load(tmp_path / "s1.npy")
    assert np.array_equal(standing, np.load(tmp_path / "s2.npy")) and not np.array_equal(standing, x)
    code, err = sample("s3.npy", "--standing-stats", "-1")
    assert code == 2 and "--standing-stats" in err and "Traceback" not in err
    code, _, err = run_main(capsys, "eval", run, "eval.standing_stats=3", "--out", str(tmp_path / "standing.json"))
    assert code == 0, err
    assert json.load(open(tmp_path / "standing.json"))["fid"] != pytest.approx(lines[1]["fid"], rel=1e-5)
    code, _, err = run_main(capsys, "eval", run, "eval.standing_stats=-2")
    assert code == 2 and "standing_stats=-2" in err


def test_classifier_trains_on_a_handful_of_steps():
    """`classifier train --limit N` with N of a few batches: OneCycleLR divides by zero when its
    warm-up spans a single step (5 steps at pct_start 0.2, here), so short runs train at a
    constant learning rate."""
    from ganscale.metrics.classifier import train_classifier

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (80, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.arange(80) % 10
    result = train_classifier((x, y), (x[:20], y[:20]), epochs=1, batch_size=16, log=lambda s: None)
    assert 0.0 <= result.test_accuracy <= 1.0 and result.model.num_classes == 10
