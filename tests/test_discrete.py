"""Discrete outputs: the estimators against hand computations, and the discrete game.

    python -m pytest -q tests/test_discrete.py
"""

from __future__ import annotations

import itertools
import math
import os

import pytest
import torch

from conftest import REPO, backward_phases, cli
from ganscale.config import load_config
from ganscale.data.base import DataInfo
from ganscale.errors import UserError
from ganscale.nets.discrete.estimators import (bernoulli_log_prob, bgan_loss, bgan_weights, binary_concrete,
                                               gumbel_softmax, logistic_from_uniform, reinforce_loss, sample_gumbel,
                                               temperature_at)

MNIST = os.path.join(os.environ.get("GANSCALE_SHARED_DATA", os.path.join(REPO, "..", "shared", "data")), "mnist")


def within(freq: torch.Tensor, p: torch.Tensor, n: int, sigmas: float = 5.0) -> bool:
    """Empirical frequencies of n draws match probabilities p within `sigmas` binomial std."""
    return bool(((freq - p).abs() <= sigmas * (p * (1 - p) / n).sqrt() + 1e-12).all())


# ----------------------------------------------------------------- Gumbel-softmax
def test_gumbel_softmax_argmax_frequencies_are_the_softmax_probabilities():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([1.5, 0.0, -1.0, 0.7, -2.5])
    n = 40_000
    for tau in (1.0, 0.3):
        y = gumbel_softmax(logits.expand(n, -1), tau, sample_gumbel((n, 5), generator=g))
        assert torch.allclose(y.sum(-1), torch.ones(n), atol=1e-5) and (y >= 0).all()
        freq = torch.bincount(y.argmax(-1), minlength=5).float() / n
        assert within(freq, torch.softmax(logits, 0), n)
    hard = gumbel_softmax(logits.expand(n, -1), 0.5, sample_gumbel((n, 5), generator=g), hard=True)
    one_hot = hard.round()  # straight-through adds (soft - soft): one-hot up to rounding
    assert torch.allclose(hard, one_hot, atol=1e-6) and torch.equal(one_hot.sum(-1), torch.ones(n))
    assert within(one_hot.mean(0), torch.softmax(logits, 0), n)


def test_binary_concrete_is_a_bernoulli_draw_and_low_temperature_approaches_it():
    g = torch.Generator().manual_seed(1)
    logits = torch.tensor([-2.0, -0.3, 0.0, 1.2, 3.0])
    n = 40_000
    noise = logistic_from_uniform(torch.rand(n, 5, generator=g))
    hard = binary_concrete(logits, 1.0, noise, hard=True)
    assert torch.allclose(hard, hard.round(), atol=1e-6)
    hard = hard.round()
    assert within(hard.mean(0), torch.sigmoid(logits), n)
    # the relaxation at a small temperature is within a hair of the exact draw almost everywhere
    soft = binary_concrete(logits, 0.01, noise)
    assert ((soft - hard).abs() < 1e-2).float().mean() > 0.95
    # and is the first class of a two-class Gumbel-softmax with logits (l, 0)
    g1, g2 = sample_gumbel((n, 5), generator=g), sample_gumbel((n, 5), generator=g)
    two = gumbel_softmax(torch.stack([logits.expand(n, -1), torch.zeros(n, 5)], -1), 0.7, torch.stack([g1, g2], -1))
    assert torch.allclose(two[..., 0], binary_concrete(logits, 0.7, g1 - g2), atol=1e-5)


def test_straight_through_is_hard_forward_and_relaxed_backward():
    logits = torch.tensor([0.3, -1.0, 2.0], requires_grad=True)
    noise = torch.tensor([0.5, 0.2, -3.0])
    w = torch.tensor([1.0, 2.0, 3.0])
    st = binary_concrete(logits, 0.5, noise, hard=True)
    assert torch.allclose(st, torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    (st * w).sum().backward()
    s = torch.sigmoid((logits.detach() + noise) / 0.5)
    # d sigmoid((l + n) / tau) / dl = s (1 - s) / tau, by hand
    assert torch.allclose(logits.grad, w * s * (1 - s) / 0.5)


def test_temperature_schedule_is_geometric_from_start_to_end():
    assert temperature_at(0, 1.0, 0.25, 100) == 1.0
    assert temperature_at(50, 1.0, 0.25, 100) == pytest.approx(0.5)
    assert temperature_at(100, 1.0, 0.25, 100) == pytest.approx(0.25)
    assert temperature_at(10_000, 1.0, 0.25, 100) == pytest.approx(0.25)
    assert temperature_at(0, 1.0, 0.25, 0) == 0.25


# ----------------------------------------------------------------- REINFORCE
def exact_gradient(theta: torch.Tensor, reward) -> torch.Tensor:
    """grad of E_{x ~ Bernoulli(sigmoid(theta))}[reward(x)] by enumerating every outcome."""
    theta = theta.clone().requires_grad_(True)
    xs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=theta.numel())))
    p = torch.exp(bernoulli_log_prob(theta.expand(len(xs), -1), xs))
    (p * reward(xs)).sum().backward()
    return theta.grad


def test_reinforce_is_unbiased_on_a_toy():
    theta = torch.tensor([0.4, -0.8, 1.1])

    def reward(x):  # non-linear in x, so the estimate is not trivially exact
        return 2 * x[:, 0] - x[:, 1] + 3 * x[:, 0] * x[:, 2] + 0.5

    exact = exact_gradient(theta, reward)
    g = torch.Generator().manual_seed(2)
    n = 200_000
    for baseline in (0.0, 1.7):  # a baseline independent of x keeps it unbiased
        th = theta.clone().requires_grad_(True)
        x = torch.bernoulli(torch.sigmoid(theta).expand(n, -1), generator=g)
        log_prob = bernoulli_log_prob(th.expand(n, -1), x)
        # per-sample estimates, for the statistical tolerance
        per = (reward(x) - baseline)[:, None] * (x - torch.sigmoid(theta))
        reinforce_loss(log_prob, reward(x), baseline).backward()
        estimate = -th.grad  # the surrogate is minimised: its gradient is minus the estimate
        assert torch.allclose(estimate, per.mean(0), atol=1e-5)
        stderr = per.std(0) / math.sqrt(n)
        assert ((estimate - exact).abs() <= 5 * stderr).all(), (estimate, exact, stderr)


def test_reinforce_loss_takes_no_gradient_through_reward_or_baseline():
    lp = torch.tensor([-1.0, -2.0], requires_grad=True)
    r = torch.tensor([1.0, 3.0], requires_grad=True)
    b = torch.tensor(0.5, requires_grad=True)
    reinforce_loss(lp, r, b).backward()
    assert torch.equal(lp.grad, -torch.tensor([0.5, 2.5]) / 2)
    assert r.grad is None and b.grad is None


# ----------------------------------------------------------------- BGAN
def test_bgan_weights_are_normalised_discriminator_ratios():
    # D(x) = 0.5, 0.75, 0.2 -> D / (1 - D) = 1, 3, 0.25 -> normalised over the 3 samples of this z
    d = torch.tensor([[0.5, 0.75, 0.2], [0.9, 0.9, 0.9]])
    logits = torch.log(d / (1 - d))
    w = bgan_weights(logits)
    assert torch.allclose(w[0], torch.tensor([1.0, 3.0, 0.25]) / 4.25)
    assert torch.allclose(w[1], torch.full((3,), 1 / 3))
    # G's loss -1/N sum_n sum_m w_nm log p(x_nm): its gradient wrt log p is -w / N
    log_prob = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -0.5]], requires_grad=True)
    loss = bgan_loss(log_prob, logits.requires_grad_(True))
    assert loss.item() == pytest.approx(-((w * log_prob.detach()).sum(1)).mean().item())
    loss.backward()
    assert torch.allclose(log_prob.grad, -w / 2)
    assert logits.grad is None


# ----------------------------------------------------------------- the game
def game_module(estimator: str, *extra: str):
    from ganscale.train.module import GANModule

    cfg = load_config([], ["game.name=discrete", f"model.discrete.estimator={estimator}", "model.z_dim=8",
                           "model.mlp.G.width=32", "model.mlp.D.width=32", "data.batch_size=16", *extra])
    return GANModule(cfg, DataInfo("image", (1, 6, 6), 0))


@pytest.mark.parametrize("estimator", ["gumbel", "gumbel_st", "reinforce", "bgan"])
def test_every_estimator_trains_G_through_its_phase(estimator):
    torch.manual_seed(0)
    m = game_module(estimator)
    x = torch.rand(16, 1, 6, 6) * 2 - 1
    m.game.start_iteration(m, {"x": x})
    assert set(m.reals[0][0].unique().tolist()) == {-1.0, 1.0}  # reals binarized
    assert backward_phases(m) == ["D_main", "G_main"]
    grads = [p.grad for p in m.G.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    s = m.sample(5, seed=3)
    assert set(s.unique().tolist()) <= {-1.0, 1.0} and torch.equal(s, m.sample(5, seed=3))


def test_reinforce_baseline_is_a_moving_average_of_the_mean_reward():
    m = game_module("reinforce", "model.discrete.baseline_decay=0.5")
    m.game.start_iteration(m, {"x": torch.rand(16, 1, 6, 6) * 2 - 1})
    m.phase = "G_main"
    m.game.g_main(m, 0)
    r0 = m.stats["discrete/reward"]
    assert m.G.reward_baseline == pytest.approx(float(r0))  # the first batch's mean
    m.iteration = 1
    m.game.g_main(m, 0)
    assert m.stats["discrete/baseline"] == pytest.approx(float(r0))
    assert m.G.reward_baseline == pytest.approx(0.5 * float(r0) + 0.5 * float(m.stats["discrete/reward"]))
    assert "G.reward_baseline" in {f"G.{k}" for k in m.G.state_dict()}  # checkpoints carry it


def test_bad_discrete_settings_are_user_errors():
    with pytest.raises(UserError, match="estimator='straight'.*gumbel, gumbel_st, reinforce, bgan"):
        load_config([], ["model.discrete.estimator=straight"])
    with pytest.raises(UserError, match="model.arch"):
        game_module("gumbel", "model.arch=dcgan")
    with pytest.raises(UserError, match="sigmoid D"):
        game_module("bgan", "loss.name=hinge")
    with pytest.raises(UserError, match="G_output='sigmoid' unknown; choose one of: tanh, logits"):
        load_config([], ["model.dcgan.G_output=sigmoid"])


@pytest.mark.parametrize("estimator", ["gumbel_st", "bgan"])
def test_dcgan_with_logits_output_is_a_binary_image_generator(estimator):
    from ganscale.train.module import GANModule

    dcgan = ["model.arch=dcgan", "model.dcgan.G_ch=4", "model.dcgan.D_ch=4", "model.discrete.bgan_samples=2"]
    with pytest.raises(UserError, match="model.dcgan.G_output=logits"):  # the tanh DCGAN is refused, naming the fix
        game_module(estimator, *dcgan)
    torch.manual_seed(0)
    cfg = load_config([], ["game.name=discrete", f"model.discrete.estimator={estimator}", "model.z_dim=8",
                           "data.batch_size=8", *dcgan, "model.dcgan.G_output=logits"])
    m = GANModule(cfg, DataInfo("image", (1, 28, 28), 0))
    from ganscale.nets.dcgan import DCGANGenerator

    tanh_G = DCGANGenerator(8, (1, 28, 28), 0, 4)  # the same weights with the image output
    tanh_G.load_state_dict(m.G.base.state_dict())
    z = torch.randn(8, 8)
    logits = m.G.logits(z)
    assert torch.allclose(torch.tanh(logits), tanh_G(z), atol=1e-6)  # the tanh's input: unbounded logits
    m.game.start_iteration(m, {"x": torch.rand(8, 1, 28, 28) * 2 - 1})
    assert backward_phases(m) == ["D_main", "G_main"]
    assert all(p.grad is not None for p in m.G.parameters())
    assert set(m.sample(4, seed=1).unique().tolist()) <= {-1.0, 1.0}


@pytest.mark.slow  # packs shards, trains and samples in fresh processes
@pytest.mark.skipif(not os.path.isfile(os.path.join(MNIST, "train-images-idx3-ubyte.gz")),
                    reason=f"MNIST IDX files not found in {MNIST}")
def test_binary_mnist_trains_from_the_cli_and_samples_binary_images(tmp_path):
    shards = str(tmp_path / "shards")
    r = cli("data", "pack", MNIST, shards, "--limit", "300", "--max-samples", "100")
    assert r.returncode == 0, r.stderr
    runs = str(tmp_path / "runs")
    r = cli("train", "configs/mnist/binary.yaml", f"data.shards.urls={shards}", f"run.root={runs}", "run.name=b",
            "trainer.max_iters=4", "trainer.plot_every=0", "trainer.ckpt_every=4", "data.num_workers=0",
            "model.discrete.estimator=bgan", "model.discrete.bgan_samples=3")
    assert r.returncode == 0, r.stderr[-3000:]
    out = str(tmp_path / "samples.npy")
    r = cli("sample", os.path.join(runs, "b"), "--num", "8", "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    import numpy as np

    images = np.load(out)
    assert images.shape[0] == 8 and set(np.unique(images).tolist()) <= {0, 255}  # binary pixels


def test_class_summary_against_hand_computation():
    from ganscale.metrics.classes import class_summary, kl_to_uniform

    # predictions 0, 0, 1, 3 over 4 classes: histogram (1/2, 1/4, 0, 1/4)
    logits = torch.full((4, 4), -10.0)
    logits[[0, 1, 2, 3], [0, 0, 1, 3]] = 10.0
    s = class_summary(logits)
    assert s["histogram"] == [0.5, 0.25, 0.0, 0.25] and s["classes_seen"] == 3
    # KL = sum p log(p / (1/4)) = 0.5 log 2 + 2 * 0.25 log 1 = 0.5 log 2
    assert s["kl_uniform"] == pytest.approx(0.5 * math.log(2))
    assert kl_to_uniform(torch.full((10,), 0.1, dtype=torch.float64)) == pytest.approx(0.0, abs=1e-12)
    assert s["confidence"] == pytest.approx(1 / (1 + 3 * math.exp(-20)))


# ----------------------------------------------------------------- the SeqGAN oracle
def test_oracle_is_seeded_saved_safely_and_scores_its_own_samples_best(tmp_path):
    from ganscale.data.synth.oracle import load_oracle, make_oracle, save_oracle

    oracle = make_oracle(seed=4, vocab=50, length=8, emb=8, hidden=8)
    assert all(torch.equal(a, b) for a, b in zip(oracle.state_dict().values(),
                                                 make_oracle(seed=4, vocab=50, length=8, emb=8,
                                                             hidden=8).state_dict().values()))
    path = str(tmp_path / "oracle.safetensors")
    save_oracle(oracle, path)
    again = load_oracle(path)
    g = torch.Generator().manual_seed(0)
    own = oracle.sample(2000, g)
    assert own.shape == (2000, 8) and own.min() >= 0 and own.max() < 50
    assert again.nll(own) == pytest.approx(oracle.nll(own), abs=1e-6)
    # its own samples score far better than uniform noise (whose expected NLL is >= log 50 - ...)
    uniform = torch.randint(50, (2000, 8), generator=g)
    assert oracle.nll(own) < oracle.nll(uniform) - 1.0
    # the NLL of its own samples estimates its entropy rate, below log(vocab)
    assert oracle.nll(own) < math.log(50)
    with open(path, "r+b") as f:  # a corrupt file is a user error, not a traceback
        f.write(b"garbage!")
    with pytest.raises(UserError, match="safetensors"):
        load_oracle(path)
    with pytest.raises(UserError, match="does not exist"):
        load_oracle(str(tmp_path / "missing.safetensors"))


def test_binary_mnist_benchmark_rewrites_only_its_section_with_the_bar_verdict(tmp_path):
    import json
    import sys

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import binary_mnist

    doc = tmp_path / "discrete.md"
    doc.write_text("# Discrete outputs\n\nintro\n\n## Binarized MNIST\n\nold figures\n\n## Sequences\n\nkept\n")
    hist = [0.1] * 10

    def row(kl, classes, it=100):
        return {"classes_seen": classes, "kl_uniform": kl, "confidence": 0.9, "fid": 1.0, "histogram": hist,
                "iterations": it, "figure": "x.png"}

    results = {"iters": 100, "long_iters": 0, "num_samples": 10, "config": "configs/mnist/binary.yaml",
               "overrides": [], "recipe": "a recipe", "machine": "a machine",
               "classifier": {"epochs": 2, "test_accuracy": 0.99}, "floor": row(0.001, 10),
               "estimators": {"gumbel": row(0.2, 10), "bgan": row(0.04, 10), "reinforce": row(0.01, 9),
                              "gumbel_st (400 iterations)": row(0.0, 10, 400)}}
    (tmp_path / "discrete").mkdir()
    (tmp_path / "discrete" / "binary_mnist.json").write_text(json.dumps(results))
    binary_mnist.main(["--doc", str(doc), "--doc-only"])
    text = doc.read_text()
    assert "old figures" not in text and text.endswith("\n\n## Sequences\n\nkept\n") and "intro" in text
    assert "--iters 100 --long-iters 0`" in text
    # the best at the common budget by KL is reinforce (9 classes: bar not met), not the longer run's 0.0
    assert "best is `reinforce` with 9 classes and KL 0.0100: **not met**" in text
    assert "a recipe" in text and all(t in text for t in binary_mnist.TRIED)
    results["estimators"]["reinforce"]["classes_seen"] = 10
    (tmp_path / "discrete" / "binary_mnist.json").write_text(json.dumps(results))
    binary_mnist.main(["--doc", str(doc), "--doc-only", "--note", "A note."])
    text = doc.read_text()
    assert "best is `reinforce` with 10 classes and KL 0.0100: **met**" in text and "\nA note.\n" in text
    assert json.loads((tmp_path / "discrete" / "binary_mnist.json").read_text())["notes"] == ["A note."]
