"""InfoGAN (ganscale.games.infogan): L_I against hand-computed values, the latent layout, the
Hungarian accuracy, who trains Q, and sample --code / traversals / eval from the command line.
Its DDP/ZeRO equivalence is the `infogan` case of tests/dist_worker.py."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from conftest import REPO, cli
from ganscale.errors import UserError
from ganscale.games.objectives import infogan_mi_categorical, infogan_mi_continuous
from ganscale.metrics.infogan import hungarian_accuracy, parse_codes, predict_codes, sample_with_codes, traversal
from ganscale.nets.infogan import InfoDiscriminator, InfoGenerator, InfoQ

MNIST = os.path.join(REPO, "..", "shared", "data", "mnist")
TINY = ["game.name=infogan", "data.kind=digits", f"data.digits.path={MNIST}", "data.batch_size=8",
        "game.infogan.width=32", "game.infogan.ch=8", "eval.metrics=[]", "reg.r1_gamma=0.0"]


def test_information_terms_match_hand_computed_values():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    code = torch.tensor([0, 2])
    ce = [-(2 - math.log(math.exp(2) + 2)), -(0 - math.log(math.e + 2))]
    assert infogan_mi_categorical(logits, code).item() == pytest.approx(math.log(3) - sum(ce) / 2, rel=1e-6)
    # Q certain and right: L_I = ln K, the entropy of the code
    assert infogan_mi_categorical(torch.eye(3) * 50, torch.arange(3)).item() == pytest.approx(math.log(3), abs=1e-6)

    mean, c = torch.tensor([[0.5, -1.0], [0.0, 0.0]]), torch.tensor([[1.0, -1.0], [0.5, 0.0]])
    # row 0: 0.5 (1 - 0.25) + 0.5 (1 - 0) = 0.875; row 1: 0.5 (0.25 - 0.25) + 0 = 0
    assert infogan_mi_continuous(mean, c).item() == pytest.approx(0.4375)


def test_latent_layout_and_fixed_codes():
    G = InfoGenerator(noise_dim=5, width=16, ch=4)
    z = G.sample_z(4000, generator=torch.Generator().manual_seed(0))
    noise, cat, cont = G.split_latent(z)
    assert z.shape == (4000, 5 + 10 + 2) and torch.equal(G.join_latent(noise, cat, cont), z)
    assert noise.min() >= -1 and noise.max() <= 1 and cont.min() >= -1 and cont.max() <= 1
    assert noise.min() < -0.99 and cont.max() > 0.99  # U(-1, 1), not U(0, 1) or a normal
    assert torch.equal(z[:, 5:15].sum(1), torch.ones(4000)) and set(cat.tolist()) == set(range(10))

    x = sample_with_codes(G, 6, 0, parse_codes(["cat=3", "c1=-1.5"], G))
    assert x.shape == (6, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, sample_with_codes(G, 6, 0, {"cat": 3, "c1": -1.5}))
    assert traversal(G, 0, 0).shape == (100, 1, 28, 28)
    for bad in (["cat=10"], ["c2=0"], ["c0=abc"], ["cat"]):
        with pytest.raises(UserError, match="--code"):
            parse_codes(bad, G)


def test_hungarian_accuracy_finds_the_best_one_to_one_map():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([2, 2, 0, 1, 1, 1, 1])  # code 2 -> 0, code 1 -> 2 (3 rows), code 0 -> 1
    acc, mapping = hungarian_accuracy(pred, labels, 3)
    assert acc == pytest.approx(6 / 7) and mapping == [1, 2, 0]


def test_nets_start_as_the_reference_custom_ops():
    """leaky_rectify's slope 0.01; N(0, 0.02) weights (convs truncated at 2 std), zero biases,
    BatchNorm scales N(1, 0.02): a revert to PyTorch's defaults (kaiming uniform, scales 1) fails."""
    torch.manual_seed(0)
    D, G, Q = (InfoDiscriminator(width=256, ch=16, init="reference"), InfoGenerator(width=256, ch=16, init="reference"),
               InfoQ(width=256, init="reference"))
    assert {m.negative_slope for n in (D, Q) for m in n.modules() if isinstance(m, torch.nn.LeakyReLU)} == {0.01}
    conv = D.trunk[2].weight
    assert conv.abs().max() <= 0.04 and conv.std().item() == pytest.approx(0.0176, abs=0.002)  # truncated N(0, .02)
    for w in (D.trunk[6].weight, G.fc[3].weight, G.deconv[0].weight, Q.body[0].weight):
        assert w.std().item() == pytest.approx(0.02, abs=0.002) and w.mean().abs() < 0.002
    for net in (D, G, Q):
        bns = [m for m in net.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
        scales = torch.cat([m.weight.detach() for m in bns])
        assert bns and (scales - 1).abs().max() < 0.1 and (scales - 1).std().item() == pytest.approx(0.02, abs=0.005)
        assert all(m.bias.abs().max() == 0 for m in net.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d))
    # the default game.infogan.init=pytorch (and slope=0.1, the old slope): torch's defaults, BatchNorm scales 1
    Q = InfoQ(width=256, slope=0.1, init="pytorch")
    assert torch.equal(Q.body[1].weight, torch.ones(128)) and Q.body[2].negative_slope == 0.1


def test_bad_init_or_slope_is_a_user_error():
    from ganscale.config import load_config

    for bad, msg in (("game.infogan.init=xavier", "choose reference or pytorch"), ("game.infogan.slope=2", "slope")):
        with pytest.raises(UserError, match=msg):
            load_config([], [*TINY[:2], bad])


def test_batch_statistics_accuracy_leaves_the_nets_as_they_were():
    import copy

    torch.manual_seed(0)
    D, Q = InfoDiscriminator(width=16, ch=4), InfoQ(width=16)
    bn = D.trunk[3]
    bn.running_mean.fill_(50.0)  # running statistics far from any batch's
    x = torch.rand(40, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        want_train = torch.cat([copy.deepcopy(Q)(copy.deepcopy(D)(x[i:i + 20])[1])[0].argmax(1) for i in (0, 20)])
        D.eval(), Q.eval()
        want_eval = Q(D(x)[1])[0].argmax(1)
        D.train(), Q.train()
    assert torch.equal(predict_codes(D, Q, x, batch=20, batch_stats=True), want_train)
    assert torch.equal(predict_codes(D, Q, x, batch=20), want_eval)
    assert D.training and Q.training and torch.equal(bn.running_mean, torch.full_like(bn.running_mean, 50.0))


def test_q_is_trained_by_ds_player_and_both_losses_carry_l_i():
    import lightning as L

    from ganscale.config import load_config
    from ganscale.data.base import DataInfo
    from ganscale.train.module import GANModule

    cfg = load_config([], [*TINY[:2], "game.infogan.width=16", "game.infogan.ch=4"])
    m = GANModule(cfg, DataInfo("image", (1, 28, 28), 0))
    assert m.game.players["D"].nets == ("D", "Q")
    m.game.x = torch.rand(4, 1, 28, 28) * 2 - 1
    L.seed_everything(0, verbose=False)
    for phase, trained in (("D_main", {"D", "Q"}), ("G_main", {"G"})):
        m.phase = phase
        m._train(m.phase_by_name(phase).player)
        m.zero_grad()
        loss = m.phase_by_name(phase).loss(m, 0)
        loss.backward()
        has_grad = {n for n in ("G", "D", "Q") if any(p.grad is not None for p in m.net(n).parameters())}
        assert has_grad == trained, phase
        info = m.stats["info/L_I_cat"] + m.stats["info/L_I_cont"]  # lambda = 1
        gan = m.stats["loss/D/gan"] if phase == "D_main" else torch.nn.functional.softplus(-m.D(m.G(
            m.noise(4)))[0]).mean()
        assert loss.item() == pytest.approx((gan - info).item(), rel=1e-5, abs=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(MNIST), reason="needs ../shared/data/mnist")
def test_train_sample_with_codes_and_eval_from_the_cli(tmp_path):
    r = cli("train", "configs/mnist/infogan.yaml", *TINY[2:], f"run.root={tmp_path}", "run.name=i",
            "trainer.max_iters=4", "trainer.ckpt_every=4", "trainer.log_every=2", "trainer.plot_every=0",
            "trainer.progress_bar=false", "wandb.mode=disabled")
    assert r.returncode == 0, r.stderr[-3000:]
    run = str(tmp_path / "i")
    grid = str(tmp_path / "grid.png")
    r = cli("sample", run, "--code", "cat=3", "--code", "c0=-1.5", "--num", "8", "--out", grid)
    assert r.returncode == 0, r.stderr[-3000:]
    assert all(os.path.isfile(str(tmp_path / f"grid{s}.png")) for s in ("", "_traversal_c0", "_traversal_c1"))
    r = cli("sample", run, "--code", "cat=12", "--num", "8", "--out", grid)
    assert r.returncode == 2 and "categories are 0..9" in r.stderr and "Traceback" not in r.stderr
    r = cli("eval", run, "--out", str(tmp_path / "e.json"))
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.load(open(tmp_path / "e.json"))
    assert 0.1 <= metrics["cat_accuracy_batch_stats"] <= 1
    assert 0.1 <= metrics["cat_accuracy"] <= 1 and sorted(metrics["assignment"]) == list(range(10))
