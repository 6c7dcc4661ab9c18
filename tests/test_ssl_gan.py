"""The semi-supervised GAN (ganscale.games.ssl_gan): its losses against hand-computed values, the
labelled stream (N per class, seeded; ranks slice the global batch), no label but the labelled
stream's reaching any loss, and train -> predict -> eval from the command line. Its DDP/ZeRO
equivalence is the `ssl` case of tests/dist_worker.py."""

from __future__ import annotations

import json
import math
import os

import lightning as L
import numpy as np
import pytest
import torch

from conftest import REPO, cli
from ganscale.config import load_config
from ganscale.errors import UserError
from ganscale.games.objectives import feature_matching, ssl_supervised_loss, ssl_unsupervised_loss

MNIST = os.path.join(REPO, "..", "shared", "data", "mnist")
needs_mnist = pytest.mark.skipif(not os.path.isdir(MNIST), reason="needs ../shared/data/mnist")
TINY = ["game.name=ssl_gan", "data.kind=digits", f"data.digits.path={MNIST}", "data.digits.labelled_per_class=2",
        "data.batch_size=16", "game.ssl.d_widths=[32,16]", "game.ssl.g_width=16", "game.ssl.z_dim=8",
        "gan.ema.decay=0.5", "eval.metrics=[]", "reg.r1_gamma=0.0"]


def test_losses_match_hand_computed_values():
    lab = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    y = torch.tensor([0, 2])
    ce = [-(2.0 - math.log(math.exp(2) + 1 + math.exp(-1))), -(0.0 - math.log(math.exp(0.5) + math.exp(1.5) + 1))]
    assert ssl_supervised_loss(lab, y).item() == pytest.approx(sum(ce) / 2, rel=1e-6)

    unl, fake = torch.tensor([[1.0, -2.0, 0.0]]), torch.tensor([[-1.0, -1.0, -3.0]])
    z_unl, z_fake = math.e + math.exp(-2) + 1, 2 * math.exp(-1) + math.exp(-3)
    # D(x) = Z / (1 + Z): -0.5 log D(x_unl) - 0.5 log(1 - D(G(z)))
    want = -0.5 * math.log(z_unl / (1 + z_unl)) - 0.5 * math.log(1 / (1 + z_fake))
    assert ssl_unsupervised_loss(unl, fake).item() == pytest.approx(want, rel=1e-6)

    f_real, f_fake = torch.tensor([[1.0, 2.0], [3.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 4.0]])
    # means (2, 1) and (0, 2): mean(2^2, (-1)^2) = 2.5 (the reference's squared difference, not L1)
    assert feature_matching(f_real, f_fake).item() == pytest.approx(2.5)


def test_data_dependent_init_standardises_every_layer():
    from ganscale.nets.ssl import SSLDiscriminator

    torch.manual_seed(0)
    D = SSLDiscriminator((1, 6, 6), [20, 10], 4, 0.3, 0.5)
    x = torch.rand(64, 1, 6, 6) * 2 - 1
    noise = torch.randn(64, D.noise_dim)
    D.init_from_data(x, noise)  # with D's noise on, as the reference's init pass
    h, parts = (x.flatten(1) + 1) / 2, noise.split(D.dims, dim=1)
    for layer, eps, std in zip([*D.hidden, D.out], parts, D.stds):
        t = layer(h + std * eps)
        torch.testing.assert_close(t.mean(0), torch.zeros(t.shape[1]), atol=1e-5, rtol=0)
        torch.testing.assert_close(t.var(0, unbiased=False), torch.ones(t.shape[1]), atol=1e-4, rtol=0)
        h = torch.relu(t)
    logits, features = D(x)  # noise-free: deterministic
    assert torch.equal(logits, D(x)[0]) and features.shape == (64, 10)


def test_feature_layer_is_the_last_hidden_relu_before_its_noise():
    """The reference's layers[-3]: the last dense layer's ReLU output; its own noise reaches the
    logits only. Only the output layer's weight-norm scale trains (nn.DenseLayer's train_scale)."""
    from ganscale.nets.ssl import SSLDiscriminator, scale_of

    torch.manual_seed(0)
    D = SSLDiscriminator((1, 6, 6), [20, 10], 4, 0.3, 0.5)
    x = torch.rand(8, 1, 6, 6) * 2 - 1
    noise = torch.randn(8, D.noise_dim)
    last_noise = torch.zeros_like(noise)
    last_noise[:, -10:] = noise[:, -10:]
    _, clean = D(x)
    logits, feats = D(x, last_noise)  # noise only after the last hidden layer
    assert torch.equal(feats, clean) and not torch.equal(logits, D(x)[0])
    h = (x.flatten(1) + 1) / 2 + 0.3 * noise[:, :36]
    h = torch.relu(D.hidden[0](h)) + 0.5 * noise[:, 36:56]
    torch.testing.assert_close(D(x, noise)[1], torch.relu(D.hidden[1](h)))
    assert (feats >= 0).all()

    trainable = {n for n, p in D.named_parameters()}
    assert "out.parametrizations.weight.0.g" in trainable
    assert not any(n.startswith("hidden") and n.endswith(".g") for n in trainable)
    assert all(isinstance(scale_of(layer), torch.Tensor) and not isinstance(scale_of(layer), torch.nn.Parameter)
               for layer in D.hidden)
    D.requires_grad_(True)  # what the engine does for D's phase: the hidden scales stay fixed
    D(x, noise)[0].sum().backward()
    assert all(scale_of(layer).grad is None for layer in D.hidden) and scale_of(D.out).grad is not None
    w = D.out.weight
    torch.testing.assert_close(w.norm(dim=1), scale_of(D.out).detach())  # w = g v / |v|


@needs_mnist
def test_labelled_subset_is_seeded_and_balanced():
    from ganscale.data.digits import labelled_subset
    from ganscale.metrics.classifier import load_digits

    _, labels = load_digits(MNIST, "train")
    a, b, c = (labelled_subset(labels, 10, s) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(labels[a], torch.arange(10).repeat_interleave(10))
    assert len(set(a.tolist())) == 100
    with pytest.raises(UserError, match="class"):
        labelled_subset(labels[:50], 10, 1)


@needs_mnist
def test_ranks_slice_the_global_batches_of_both_streams():
    from ganscale.data import build_datamodule
    from ganscale.data.digits import DigitsStream

    cfg = load_config([], [*TINY, "data.digits.labels=true"])
    dm = build_datamodule(cfg)
    for i in (0, 3, 3751):  # 3751: the unlabelled stream crosses an epoch (60000 / 16 = 3750)
        halves = [DigitsStream(dm, r, 2, 0, 8, 4).batch_at(i) for r in (0, 1)]
        ref = DigitsStream(dm, 0, 1, 0, 16, 8).batch_at(i)
        for key in ("x", "y", "x_lab", "y_lab"):
            assert torch.equal(torch.cat([h[key] for h in halves]), ref[key]), (i, key)
    assert set(ref["y_lab"].tolist()) <= set(range(10)) and ref["x"].min() >= -1 and ref["x"].max() <= 1


def _train(cfg, poison=None, iters=4) -> dict:
    from ganscale.data import build_datamodule
    from ganscale.train.module import GANModule

    L.seed_everything(cfg.seed, verbose=False)
    dm = build_datamodule(cfg)
    if poison is not None:
        poison(dm)
    module = GANModule(cfg, dm.info)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=iters,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, deterministic=True)
    trainer.fit(module, datamodule=dm)
    return {k: v.clone() for k, v in module.state_dict().items()}


@needs_mnist
def test_no_label_but_the_labelled_streams_reaches_a_loss():
    """Every unlabelled image's label is in the batches (data.digits.labels=true) and poisoned:
    training is bit-identical. Poisoning the labelled stream's labels changes it (the test can fail).
    gan.n_disc=2: G's step reads a second unlabelled chunk, poisoned too."""
    cfg = load_config([], [*TINY, "data.digits.labels=true", "gan.n_disc=2"])

    def poison_unlabelled(dm):
        dm.labels.copy_(torch.randperm(len(dm.labels), generator=torch.Generator().manual_seed(5)) % 10)

    def poison_labelled(dm):
        dm.lab_labels.copy_((dm.lab_labels + 1) % 10)

    clean = _train(cfg)
    poisoned = _train(cfg, poison_unlabelled)
    assert clean.keys() == poisoned.keys() and {"D_ema.n_averaged"} <= clean.keys()
    for k in clean:
        assert torch.equal(clean[k], poisoned[k]), k
    changed = _train(cfg, poison_labelled)
    assert any(not torch.equal(clean[k], changed[k]) for k in clean if k.startswith("D."))


def test_config_and_data_errors_name_the_fix():
    with pytest.raises(UserError, match="labelled_per_class"):
        load_config([], ["game.name=ssl_gan", "data.kind=digits"])
    with pytest.raises(UserError, match="init_batch=0"):
        load_config([], ["game.name=ssl_gan", "data.kind=toy"])
    with pytest.raises(UserError, match="gan.n_disc=1"):
        load_config([], ["game.name=ssl_gan", "data.kind=digits", "data.digits.labelled_per_class=1", "gan.n_disc=3"])
    from ganscale.games.ssl_gan import SSLGANGame

    with pytest.raises(UserError, match="labelled stream"):
        SSLGANGame().start_iteration(None, {"x": torch.zeros(2, 2)})


@needs_mnist
@pytest.mark.slow
def test_train_predict_eval_from_the_cli(tmp_path):
    r = cli("train", "configs/mnist/ssl_gan.yaml", *TINY[2:], f"run.root={tmp_path}", "run.name=s",
            "trainer.max_iters=6", "trainer.ckpt_every=6", "trainer.log_every=3", "trainer.plot_every=0",
            "trainer.progress_bar=false", "wandb.mode=disabled")
    assert r.returncode == 0, r.stderr[-3000:]
    run = str(tmp_path / "s")
    out = str(tmp_path / "preds.npy")
    r = cli("predict", run, "--data", MNIST, "--split", "test", "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    preds = np.load(out)
    assert preds.dtype == np.int64 and preds.shape == (10000,) and 0 <= preds.min() and preds.max() < 10
    r = cli("eval", run, "--out", str(tmp_path / "e.json"))
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.load(open(tmp_path / "e.json"))
    labels = np.frombuffer(__import__("gzip").open(os.path.join(MNIST, "t10k-labels-idx1-ubyte.gz")).read()[8:],
                           np.uint8)
    assert metrics["iter"] == 6 and metrics["num_test"] == 10000
    assert metrics["test_errors"] == int((preds != labels).sum())  # eval scores what predict writes
    r = cli("predict", run, "--data", str(tmp_path / "nowhere"), "--out", out)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
