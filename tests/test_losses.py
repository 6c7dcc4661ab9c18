"""Each loss and regularizer against values computed by hand."""

import math

import pytest
import torch

from ganscale.losses import LOSSES, get_loss
from ganscale.regularizers import apply_spectral_norm, gradient_penalty, r1_penalty

R = torch.tensor([2.0, -1.0])  # D's outputs on reals
F = torch.tensor([0.5, -3.0])  # D's outputs on fakes


def sp(t):  # softplus by hand
    return math.log1p(math.exp(t))


def sig(t):
    return 1 / (1 + math.exp(-t))


def mean(xs):
    return sum(xs) / len(xs)


HAND = {
    # name: (D real, D fake, G)
    "minimax": (
        mean([-math.log(sig(2.0)), -math.log(sig(-1.0))]),
        mean([-math.log(1 - sig(0.5)), -math.log(1 - sig(-3.0))]),
        mean([math.log(1 - sig(0.5)), math.log(1 - sig(-3.0))]),
    ),
    "nonsaturating": (
        mean([sp(-2.0), sp(1.0)]),
        mean([sp(0.5), sp(-3.0)]),
        mean([-math.log(sig(0.5)), -math.log(sig(-3.0))]),
    ),
    "hinge": (mean([max(0, 1 - 2.0), max(0, 1 + 1.0)]), mean([max(0, 1 + 0.5), max(0, 1 - 3.0)]), mean([-0.5, 3.0])),
    "wasserstein": (mean([-2.0, 1.0]), mean([0.5, -3.0]), mean([-0.5, 3.0])),
    "least_squares": (mean([0.5 * (2 - 1) ** 2, 0.5 * (-1 - 1) ** 2]), mean([0.5 * 0.25, 0.5 * 9]),
                      mean([0.5 * (0.5 - 1) ** 2, 0.5 * (-3 - 1) ** 2])),
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_loss_matches_hand_computation(name):
    loss = get_loss(name)
    d_real, d_fake, g = HAND[name]
    assert loss.d_real(R).item() == pytest.approx(d_real, rel=1e-6)
    assert loss.d_fake(F).item() == pytest.approx(d_fake, rel=1e-6)
    assert loss.g(F).item() == pytest.approx(g, rel=1e-6)
    assert loss.d_real.__doc__ and loss.g.__doc__  # each states its formula


def test_every_registered_loss_is_checked():
    assert set(LOSSES.choices()) == set(HAND)


def test_minimax_saturates_where_nonsaturating_does_not():
    # Early in training D confidently rejects fakes (very negative logits): the saturating G loss
    # has almost no gradient there, the non-saturating one has a large one.
    f = torch.tensor([-8.0], requires_grad=True)
    (g_sat,) = torch.autograd.grad(get_loss("minimax").g(f), f)
    (g_ns,) = torch.autograd.grad(get_loss("nonsaturating").g(f), f)
    assert abs(g_sat.item()) < 1e-3 < abs(g_ns.item())


def test_gradient_penalty_linear_critic():
    # D(x) = w.x has grad w everywhere: GP = (||w|| - c)^2, whatever the interpolation.
    w = torch.tensor([3.0, 4.0])
    real, fake = torch.randn(5, 2), torch.randn(5, 2)
    assert gradient_penalty(lambda x: x @ w, real, fake, center=1.0).item() == pytest.approx(16.0)
    assert gradient_penalty(lambda x: x @ w, real, fake, center=0.0).item() == pytest.approx(25.0)


def test_gradient_penalty_quadratic_critic_uses_interpolates():
    # D(x) = 1/2 ||x||^2 has grad x: at x_hat = eps*real + (1-eps)*fake with eps = 1/2.
    real = torch.tensor([[2.0, 0.0]])
    fake = torch.tensor([[0.0, 0.0]])
    eps = torch.full((1, 1), 0.5)
    gp = gradient_penalty(lambda x: 0.5 * x.pow(2).sum(1), real, fake, center=1.0, eps=eps)
    assert gp.item() == pytest.approx((1.0 - 1.0) ** 2 + 0.0)
    eps = torch.full((1, 1), 1.0)
    gp = gradient_penalty(lambda x: 0.5 * x.pow(2).sum(1), real, fake, center=1.0, eps=eps)
    assert gp.item() == pytest.approx((2.0 - 1.0) ** 2)


def test_r1_penalty_hand_values_and_double_backward():
    # D(x) = sum(a * x^2): grad = 2 a x, R1 = E ||2 a x||^2.
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    real = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    r1 = r1_penalty(lambda x: (a * x.pow(2)).sum(1), real)
    expected = ((2 * 1) ** 2 + (4 * 1) ** 2 + 0 + (4 * 1) ** 2) / 2  # (4 + 16 + 16) / 2
    assert r1.item() == pytest.approx(expected)
    # d R1 / d a = E[8 a x^2] per component: the penalty is differentiable w.r.t. D's parameters
    (grad_a,) = torch.autograd.grad(r1, a)
    assert grad_a.tolist() == pytest.approx([8 * 1 * 1 / 2, 8 * 2 * (1 + 1) / 2])


def test_spectral_norm_bounds_largest_singular_value():
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 8)
    with torch.no_grad():
        lin.weight.mul_(10)
    apply_spectral_norm(lin)
    for _ in range(30):  # power iterations run in training-mode forwards
        lin(torch.randn(4, 16))
    sigma = torch.linalg.matrix_norm(lin.weight.detach(), ord=2).item()
    assert sigma == pytest.approx(1.0, rel=0.05)
    apply_spectral_norm(lin)  # idempotent: no second parametrization
    assert len(lin.parametrizations.weight) == 1
