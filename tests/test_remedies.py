"""Mode-collapse remedies: packing, minibatch stddev, minibatch discrimination, feature matching."""

import copy
import json
import math
import os

import pytest
import torch

from ganscale.config import load_config
from ganscale.errors import ConfigError, UserError
from ganscale.losses import LOSSES
from ganscale.nets.config import MLPNetConfig
from ganscale.nets.mlp import MLPDiscriminator
from ganscale.nets.remedies import (
    MinibatchDiscrimination,
    MinibatchStdDev,
    RemediesConfig,
    feature_matching_loss,
    pack_samples,
)
from tests.conftest import cli
from tests.test_unroll import batch, build, set_reals, snapshot


# ------------------------------------------------------------------ packing
def test_pack_samples_concatenates_consecutive_samples():
    x = torch.arange(12.0).view(6, 2)
    p = pack_samples(x, 3)
    assert p.shape == (2, 6)
    assert torch.equal(p[0], torch.cat([x[0], x[1], x[2]])) and torch.equal(p[1], torch.cat([x[3], x[4], x[5]]))
    imgs = torch.randn(4, 3, 5, 5)
    q = pack_samples(imgs, 2)
    assert q.shape == (2, 6, 5, 5)
    assert torch.equal(q[1, :3], imgs[2]) and torch.equal(q[1, 3:], imgs[3])  # channel concatenation
    assert pack_samples(x, 1) is x
    with pytest.raises(UserError, match="not divisible"):
        pack_samples(x, 4)


def test_packed_d_judges_pure_packs():
    """With pack m, D maps N inputs to N/m logits, and in the D phase every pack it judges holds
    only reals or only fakes: the trunk's input is exactly pack(real chunk) or pack(G's fakes)."""
    m, dm = build(["model.remedies.pack=4", "data.batch_size=8"])
    assert m.D(torch.randn(8, 2)).shape == (2,)
    seen = []
    m.D.trunk.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach().clone()))
    x = batch(dm, 0)["x"]
    G0 = copy.deepcopy(m.G)  # G as the D phase used it (the G phase moves it)
    m.training_step({"x": x}, 0)
    real_pack = pack_samples(x, 4)
    with torch.no_grad():
        m.iteration = 0
        fake = G0(m.noise(8, "D_main", 0))
    assert torch.equal(seen[0], real_pack)
    torch.testing.assert_close(seen[1], pack_samples(fake, 4))


# ------------------------------------------------------------------ minibatch stddev
def _stddev_by_hand(x, group, num_features, eps=1e-8):
    n, c = x.shape[0], x.shape[1]
    g = min(group, n)
    out = torch.empty(n, num_features)
    for i in range(n):
        members = x[[j for j in range(n) if j % (n // g) == i % (n // g)]]  # StyleGAN's strided groups
        for f in range(num_features):
            sl = members[:, f * (c // num_features):(f + 1) * (c // num_features)]
            std = ((sl - sl.mean(0)).pow(2).mean(0) + eps).sqrt()  # per feature (and position)
            out[i, f] = std.mean()
    return out


@pytest.mark.parametrize("shape,group,num_features", [((8, 6), 4, 1), ((8, 6), 4, 2), ((6, 4), 8, 1),
                                                      ((8, 4, 3, 3), 2, 2)])
def test_minibatch_stddev_math(shape, group, num_features):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    y = MinibatchStdDev(group, num_features)(x)
    assert y.shape == (shape[0], shape[1] + num_features, *shape[2:])
    assert torch.equal(y[:, :shape[1]], x)
    expect = _stddev_by_hand(x, group, num_features)
    for f in range(num_features):
        extra = y[:, shape[1] + f]
        assert torch.allclose(extra.reshape(shape[0], -1), expect[:, f:f + 1].expand_as(extra.reshape(shape[0], -1)),
                              atol=1e-6)


def test_minibatch_stddev_is_zero_for_identical_samples_and_rejects_bad_groups():
    x = torch.ones(4, 3)
    assert torch.allclose(MinibatchStdDev(4)(x)[:, 3], torch.full((4,), math.sqrt(1e-8)))
    with pytest.raises(UserError, match="divisible"):
        MinibatchStdDev(4)(torch.randn(6, 3))


# ------------------------------------------------------------------ minibatch discrimination
def test_minibatch_discrimination_math():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(5, num_kernels=3, kernel_dim=2)
    f = torch.randn(4, 5)
    out = layer(f)
    assert out.shape == (4, 5 + 3) and torch.equal(out[:, :5], f)
    M = (f @ layer.T).view(4, 3, 2)
    for i in range(4):
        for b in range(3):
            o = sum(math.exp(-float((M[i, b] - M[j, b]).abs().sum())) for j in range(4) if j != i)
            assert out[i, 5 + b].item() == pytest.approx(o, rel=1e-5)


def test_minibatch_discrimination_sees_collapse_and_is_twice_differentiable():
    layer = MinibatchDiscrimination(3, num_kernels=4, kernel_dim=2).double()
    same = torch.ones(5, 3, dtype=torch.float64)
    assert torch.allclose(layer(same)[:, 3:], torch.full((5, 4), 4.0, dtype=torch.float64))  # N - 1 identical
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: layer(t).sum(1), (x,))  # unrolling differentiates twice


# ------------------------------------------------------------------ feature matching
def test_feature_matching_loss_by_hand():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    fake = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    assert feature_matching_loss(real, fake).item() == pytest.approx((2 - 1) ** 2 + (3 - 0) ** 2)


@pytest.mark.parametrize("adv", [0.0, 0.5])
def test_g_loss_with_feature_matching(adv):
    """G's loss = weight * ||mean f(real) - mean f(fake)||^2 (+ adversarial_weight * adversarial),
    with f the features D returns (its last hidden layer), on this iteration's real chunk."""
    m, dm = build(["model.remedies.feature_matching.weight=2.0",
                   f"model.remedies.feature_matching.adversarial_weight={adv}", "data.batch_size=8"])
    b = set_reals(m, dm, 0)
    m._train("G")
    loss = m.game.g_loss(m, b)
    with torch.no_grad():
        fake = m.G(m.noise(b, "G_main"))
        logits, f_fake = m.D(fake, return_features=True)
        _, f_real = m.D(m.reals[-1][0], return_features=True)
    expect = 2.0 * (f_real.mean(0) - f_fake.mean(0)).pow(2).sum() + adv * m.game.loss_fn.g(logits)
    assert loss.item() == pytest.approx(expect.item(), rel=1e-6)
    assert f_fake.shape == (b, m.cfg.model.mlp.D.width)


# ------------------------------------------------------------------ every loss, every switch
ALL_ON = ["model.remedies.pack=2", "model.remedies.minibatch_discrimination.enabled=true",
          "model.remedies.minibatch_stddev.enabled=true", "model.remedies.feature_matching.weight=1.0",
          "data.batch_size=8", "gan.n_disc=2"]


def test_d_with_every_layer_has_the_documented_shapes():
    cfg = RemediesConfig(pack=2)
    cfg.minibatch_stddev.enabled = cfg.minibatch_discrimination.enabled = True
    cfg.minibatch_stddev.num_features = 2
    D = MLPDiscriminator((2,), MLPNetConfig(width=16, depth=2), cfg)
    out, h = D(torch.randn(8, 2), return_features=True)
    assert out.shape == (4,) and h.shape == (4, 16)
    assert D.head.in_features == 16 + 2 + cfg.minibatch_discrimination.num_kernels


@pytest.mark.parametrize("loss", LOSSES.choices())
def test_every_remedy_works_with_every_loss(loss):
    m, dm = build([f"loss.name={loss}", "unroll.steps=1", *ALL_ON])
    g0, d0 = snapshot(m.G), snapshot(m.D)
    for i in range(2):
        m.training_step(batch(dm, i), i)
    assert all(torch.isfinite(v).all() for v in m.stats.values())
    assert m.num_skipped == {"D": 0, "G": 0}
    assert any(not torch.equal(v, snapshot(m.G)[k]) for k, v in g0.items())
    assert any(not torch.equal(v, snapshot(m.D)[k]) for k, v in d0.items())


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("overrides,message", [
    (["data.batch_size=10", "model.remedies.pack=4"], "not divisible by it"),
    (["model.remedies.pack=0"], "pack=0 must be >= 1"),
    (["data.batch_size=12", "model.remedies.minibatch_stddev.enabled=true",
      "model.remedies.minibatch_stddev.group_size=8"], "not divisible by the group"),
    (["model.remedies.minibatch_stddev.enabled=true", "model.remedies.minibatch_stddev.num_features=3"],
     "must divide model.mlp.D.width"),
    (["model.remedies.feature_matching.weight=0", "model.remedies.feature_matching.adversarial_weight=0"],
     "G has no loss"),
])
def test_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config([], overrides)


def test_cli_trains_with_unrolling_and_every_remedy(run_root):
    r = cli("train", "configs/toy/ring.yaml", "trainer.max_iters=6", "unroll.steps=2", *ALL_ON,
            f"run.root={run_root}", "run.name=remedies", "trainer.progress_bar=false")
    assert r.returncode == 0, r.stderr[-2000:]
    with open(os.path.join(run_root, "remedies", "final_metrics.json")) as f:
        assert json.load(f)["iter"] == 6
    with open(os.path.join(run_root, "remedies", "config.yaml")) as f:
        resolved = f.read()
    assert "steps: 2" in resolved and "pack: 2" in resolved
