"""Text-to-image losses against hand-computed values."""

import math

import pytest
import torch

from ganscale.losses import LOSSES
from ganscale.losses_text import KL_WEIGHT, ca_kl, colour_consistency, ma_gp, matching_aware_d, rolled


def test_ca_kl_hand_value():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    # element 1: -1/2 (1 + 0 - 1 - 1) = 0.5; element 2: -1/2 (1 + ln2 - 0 - 2) = 0.5 - ln2/2
    assert float(ca_kl(mu, logvar)) == pytest.approx((0.5 + 0.5 - math.log(2) / 2) / 2)
    assert float(ca_kl(torch.zeros(3, 4), torch.zeros(3, 4))) == 0.0
    assert KL_WEIGHT == 2.0


def test_matching_aware_d_bce_and_hinge():
    r, w, f = torch.tensor([2.0, 0.0]), torch.tensor([1.0, -1.0]), torch.tensor([0.5, 3.0])
    sp = lambda t: math.log1p(math.exp(t))  # noqa: E731
    d = matching_aware_d(LOSSES["nonsaturating"], r, w, f)
    real, wrong, fake = (sp(-2) + sp(0)) / 2, (sp(1) + sp(-1)) / 2, (sp(0.5) + sp(3)) / 2
    assert float(d["real"]) == pytest.approx(real) and float(d["wrong"]) == pytest.approx(wrong)
    assert float(d["total"]) == pytest.approx(real + 0.5 * wrong + 0.5 * fake)
    h = matching_aware_d(LOSSES["hinge"], r, w, f)
    # real: relu(1-2)=0, relu(1-0)=1 -> 0.5; wrong: relu(2)=2, relu(0)=0 -> 1; fake: 1.5, 4 -> 2.75
    assert float(h["total"]) == pytest.approx(0.5 + 0.5 * 1.0 + 0.5 * 2.75)


def test_ma_gp_hand_value_linear_d():
    # D(x, s) = a . x + b . s has gradient (a, b) for every row: penalty = k * ||(a, b)||^p
    a = torch.tensor([1.0, 2.0, 0.0, 0.0], requires_grad=True)
    b = torch.tensor([2.0, 0.0], requires_grad=True)
    x = torch.randn(3, 1, 2, 2, requires_grad=True)
    s = torch.randn(3, 2, requires_grad=True)
    out = x.flatten(1) @ a + s @ b
    gp = ma_gp(out, x, s)  # ||(1, 2, 0, 0, 2, 0)||^6 = 9^3 = 729, times k=2
    assert float(gp.detach()) == pytest.approx(2 * 729)
    assert gp.requires_grad  # differentiable in the weights of D: it trains D
    assert float(ma_gp(out, x, s, k=1.0, p=2.0).detach()) == pytest.approx(9.0)


def test_colour_consistency_hand_value():
    coarse = torch.zeros(1, 3, 2, 2)
    fine = torch.zeros(1, 3, 2, 2)
    fine[0, 0] = torch.tensor([[1.0, -1.0], [1.0, -1.0]])  # mean 0, variance 1 in channel 0
    fine[0, 1] += 0.3  # mean 0.3 in channel 1, no variance
    # mean term: (0.3^2)/3 ; covariance term: only cov[0,0]=1 differs -> 1/9, times 5
    assert float(colour_consistency(fine, coarse)) == pytest.approx(0.09 / 3 + 5 / 9)
    assert float(colour_consistency(fine, fine)) == 0.0


def test_rolled_pairs_each_row_with_the_next():
    assert rolled(4).tolist() == [1, 2, 3, 0]
