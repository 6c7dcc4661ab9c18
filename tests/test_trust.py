"""A checkpoint from elsewhere never runs code, bad files are clear errors (exit 2, no traceback),
and `ganscale export` writes safetensors that `sample`/`eval` read back to the same samples."""

from __future__ import annotations

import json
import os
import shutil
import zipfile

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, cli

DATA = os.environ.get("GANSCALE_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
MNIST = os.path.join(DATA, "mnist")
HAS_MNIST = os.path.isfile(os.path.join(MNIST, "train-images-idx3-ubyte.gz"))
TOY = ["configs/toy/ring.yaml", "trainer.max_iters=20", "trainer.ckpt_every=20", "trainer.eval_every=20",
       "trainer.plot_every=0", "trainer.log_every=10", "trainer.progress_bar=false"]


class Payload:
    """Pickles to a call of os.system: what a crafted checkpoint would run."""

    def __init__(self, sentinel: str):
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


def run_main(capsys, *args):
    """`ganscale ARGS` in this process: (exit code, stdout, stderr)."""
    from ganscale.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    from ganscale.cli import main

    root = tmp_path_factory.mktemp("runs")
    assert main(["train", *TOY, f"run.root={root}", "run.name=toy"]) == 0
    return str(root / "toy")


def newest(run: str) -> str:
    return os.path.join(run, "checkpoints", "iter_00000020.ckpt")


@pytest.fixture
def evil(toy_run, tmp_path):
    """(a real checkpoint carrying a pickled os.system call, the file the call would create)."""
    sentinel = str(tmp_path / "PAYLOAD_RAN")
    ckpt = torch.load(newest(toy_run), weights_only=True)
    ckpt["ganscale"]["note"] = Payload(sentinel)
    path = str(tmp_path / "evil.ckpt")
    torch.save(ckpt, path)
    return path, sentinel


def bad_file(kind: str, folder, toy_run) -> str:
    path = os.path.join(folder, f"{kind}.ckpt")
    if kind == "empty":
        open(path, "wb").close()
    elif kind == "random":
        with open(path, "wb") as f:
            f.write(np.random.default_rng(0).bytes(4096))
    elif kind == "truncated":
        data = open(newest(toy_run), "rb").read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
    elif kind == "foreign_zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("notes/readme.txt", "not a checkpoint")
    return path


# ---------------------------------------------------------------------------- unsafe checkpoints
@pytest.mark.parametrize("command", ["sample", "eval", "export", "convert"])
def test_pickled_payload_is_refused_and_never_runs(command, evil, tmp_path, capsys):
    path, sentinel = evil
    if command == "convert":
        from ganscale.distributed.convert import main as convert_main

        capsys.readouterr()
        code, err = convert_main([path, str(tmp_path / "plain.ckpt")]), capsys.readouterr().err
    else:
        extra = {"sample": ["--out", tmp_path / "x.npy"], "eval": [], "export": ["--out", tmp_path / "exp"]}
        code, _, err = run_main(capsys, command, path, *extra[command])
    assert code == 2 and "refusing to load" in err and "posix.system" in err, err
    assert not os.path.exists(sentinel), "the pickled payload ran"


def test_resume_from_a_planted_checkpoint_is_refused(toy_run, evil, tmp_path, capsys):
    """Resume goes through Lightning's strategy -> AtomicCheckpointIO, which always loads weights_only."""
    path, sentinel = evil
    run = tmp_path / "runs" / "toy"
    shutil.copytree(toy_run, run)
    shutil.copyfile(path, newest(str(run)))  # the marker stays: only the content is foreign
    code, _, err = run_main(capsys, "train", *TOY, f"run.root={tmp_path / 'runs'}", "run.name=toy",
                            "trainer.max_iters=40")
    assert code == 2 and "refusing to load" in err, err
    assert not os.path.exists(sentinel)


def test_checkpoint_io_ignores_a_request_for_unsafe_loading(evil):
    """Rollback (ops/guard.py) and resume call strategy.load_checkpoint(path, weights_only=...)."""
    from ganscale.errors import UserError
    from ganscale.ops.checkpoint import store
    from ganscale.ops.checkpoint.io import AtomicCheckpointIO

    path, sentinel = evil
    store.write_marker(path, {"iteration": 20})
    with pytest.raises(UserError, match="refusing to load"):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not os.path.exists(sentinel)


@pytest.mark.parametrize("kind", ["empty", "random", "truncated", "foreign_zip"])
def test_malformed_files_are_user_errors(kind, toy_run, tmp_path, capsys):
    from ganscale.distributed.convert import main as convert_main

    path = bad_file(kind, tmp_path, toy_run)
    for args in (["sample", path, "--out", tmp_path / "x.npy"], ["eval", path]):
        code, _, err = run_main(capsys, *args)
        assert code == 2 and "cannot read checkpoint" in err or "is empty" in err, (args, err)
    assert convert_main([path, str(tmp_path / "p.ckpt")]) == 2


def test_real_cli_refuses_without_traceback(evil, tmp_path):
    path, sentinel = evil
    r = cli("sample", path, "--out", str(tmp_path / "x.npy"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "refusing to load" in r.stderr, r.stderr
    assert not os.path.exists(sentinel)


def test_deepspeed_shards_load_with_an_allow_list(tmp_path):
    pytest.importorskip("deepspeed")
    from deepspeed.runtime.fp16.loss_scaler import LossScaler

    from ganscale.distributed.safe_shards import restricted_load, restricted_loads
    from ganscale.errors import UserError

    scaler = LossScaler(scale=4.0)
    torch.save({"optimizer_state_dict": {"loss_scaler": scaler, "t": torch.ones(2)}}, tmp_path / "ok.pt")
    with restricted_loads():  # what DeepSpeed's own loader calls while a resume reads the shards
        from deepspeed.runtime.checkpoint_engine import torch_checkpoint_engine as tce

        loaded = tce.torch.load(tmp_path / "ok.pt", weights_only=False)
    assert loaded["optimizer_state_dict"]["loss_scaler"].cur_scale == 4.0
    sentinel = tmp_path / "PAYLOAD_RAN"
    torch.save({"optimizer_state_dict": Payload(str(sentinel))}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="posix.system"):
        restricted_load(tmp_path / "evil.pt")
    assert not sentinel.exists()


# ---------------------------------------------------------------------------- export
def test_export_round_trips_a_toy_run(toy_run, tmp_path, capsys):
    out = tmp_path / "exported"
    code, stdout, err = run_main(capsys, "export", toy_run, "--out", out, "--with-g", "--with-d")
    assert code == 0, err
    assert sorted(os.listdir(out)) == ["README.md", "config.json", "discriminator.safetensors",
                                       "generator.safetensors", "model.safetensors", "samples.png"]
    for seed in (5,):
        a, b = tmp_path / f"run{seed}.npy", tmp_path / f"exp{seed}.npy"
        assert run_main(capsys, "sample", toy_run, "--num", 500, "--out", a, "--seed", seed)[0] == 0
        assert run_main(capsys, "sample", out, "--num", 500, "--out", b, "--seed", seed)[0] == 0
        assert np.array_equal(np.load(a), np.load(b))

    from safetensors.torch import load_file

    from ganscale.export import from_pretrained
    from ganscale.train.restore import load_module

    ref, module = load_module(toy_run), from_pretrained(str(out))
    assert module.iteration == ref.iteration == 20
    for net in ("G", "D"):
        for k, v in getattr(ref, net).state_dict().items():
            assert torch.equal(getattr(module, net).state_dict()[k], v), (net, k)
    assert set(load_file(out / "model.safetensors")) == set(ref.sampler.state_dict())
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "mlp" and config["ganscale"]["info"] == {"kind": "points", "shape": [2],
                                                                           "num_classes": 0}
    final = json.load(open(os.path.join(toy_run, "final_metrics.json")))
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])  # the Hub reads this YAML block
    assert header["library_name"] == "ganscale" and "gan" in header["tags"]
    shown = {m["type"]: m["value"] for m in header["model-index"][0]["results"][0]["metrics"]}
    assert shown["kl"] == pytest.approx(final["kl"]) and shown["hq_fraction"] == final["hq_fraction"]
    assert f"| kl | {final['kl']:.6g} |" in card and "![samples](samples.png)" in card


def test_a_damaged_export_is_a_user_error(toy_run, tmp_path, capsys):
    out = tmp_path / "exported"
    assert run_main(capsys, "export", toy_run, "--out", out)[0] == 0
    assert not (out / "generator.safetensors").exists()
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[: len(data) // 2])
    code, _, err = run_main(capsys, "sample", out, "--out", tmp_path / "x.npy")
    assert code == 2 and "model.safetensors" in err, err
    (out / "config.json").write_text("{not json")
    code, _, err = run_main(capsys, "sample", out, "--out", tmp_path / "x.npy")
    assert code == 2 and "config.json" in err, err


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MNIST, reason=f"MNIST IDX files not found in {MNIST} (set GANSCALE_SHARED_DATA)")
def test_export_round_trips_an_image_run_through_sample_and_eval(tmp_path, capsys):
    from ganscale.metrics.classifier import DigitClassifier, TrainResult, save_classifier

    shards, root = tmp_path / "shards", tmp_path / "runs"
    assert run_main(capsys, "data", "pack", MNIST, shards, "--limit", 200, "--max-samples", 100)[0] == 0
    clf = str(tmp_path / "clf.pt")  # untrained: eval only has to give the same numbers twice
    torch.manual_seed(0)
    save_classifier(TrainResult(DigitClassifier(10, 28), 0.0, 0.0), clf, "test")
    code, _, err = run_main(
        capsys, "train", "configs/mnist/dcgan.yaml", f"data.shards.urls={shards}", "model.dcgan.G_ch=8",
        "model.dcgan.D_ch=8", "data.batch_size=16", "data.num_workers=0", "trainer.max_iters=4",
        "trainer.eval_every=4", "trainer.plot_every=0", "trainer.ckpt_every=4", "trainer.log_every=2",
        "gan.ema.start_iter=0", f"eval.classifier_path={clf}", "eval.extractor=classifier", "eval.metrics=[fid]",
        "eval.num_samples=64", "eval.num_reference=64", f"run.root={root}", "run.name=mnist",
        "trainer.progress_bar=false")
    assert code == 0, err
    run, out = str(root / "mnist"), tmp_path / "exported"
    assert run_main(capsys, "export", run, "--out", out)[0] == 0
    for src, name in ((run, "run.npy"), (out, "exp.npy")):
        assert run_main(capsys, "sample", src, "--num", 20, "--out", tmp_path / name, "--seed", 3,
                        "--class", "0,7")[0] == 0
    a, b = np.load(tmp_path / "run.npy"), np.load(tmp_path / "exp.npy")
    assert a.shape == (20, 28, 28, 1) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert "pipeline_tag: unconditional-image-generation" in (out / "README.md").read_text()
    metrics = []
    for src in (run, out):
        code, _, err = run_main(capsys, "eval", src, "--out", tmp_path / "m.json")
        assert code == 0, err
        metrics.append(json.load(open(tmp_path / "m.json")))
    assert metrics[0]["iter"] == metrics[1]["iter"] == 4
    assert metrics[1]["fid"] == pytest.approx(metrics[0]["fid"], rel=1e-6)
