"""DiracGAN (Mescheder et al. 2018): data at 0, G = theta, D(x) = psi * x.

The unregularized game under simultaneous gradient descent does not converge (it spirals out);
with a zero-centred gradient penalty on the data (R1, here through ganscale's regularizer) it
converges to the equilibrium (theta, psi) = (0, 0)."""

import pytest
import torch

from ganscale.losses import get_loss
from ganscale.regularizers import gradient_penalty, r1_penalty


def play(reg: str, loss_name: str = "minimax", steps: int = 3000, lr: float = 0.05, gamma: float = 1.0) -> list[float]:
    theta = torch.tensor(1.0, requires_grad=True)
    psi = torch.tensor(1.0, requires_grad=True)
    loss = get_loss(loss_name)
    real = torch.zeros(1, 1)
    dist = []
    for _ in range(steps):
        fake = theta.view(1, 1)
        d = lambda x: psi * x.squeeze(1)  # noqa: E731
        d_loss = loss.d_real(d(real)) + loss.d_fake(d(fake.detach()))
        if reg == "r1":
            d_loss = d_loss + 0.5 * gamma * r1_penalty(d, real)
        elif reg == "gp0":
            d_loss = d_loss + gamma * gradient_penalty(d, real, fake, center=0.0)
        g_loss = loss.g(d(fake))
        (g_psi,) = torch.autograd.grad(d_loss, psi)
        (g_theta,) = torch.autograd.grad(g_loss, theta)
        with torch.no_grad():  # simultaneous updates
            psi -= lr * g_psi
            theta -= lr * g_theta
        dist.append(float(torch.hypot(theta.detach(), psi.detach())))
    return dist


def test_unregularized_dirac_gan_does_not_converge():
    dist = play("none", "minimax")  # the zero-sum game of the paper spirals outwards
    assert dist[-1] > dist[0] > 1.0
    assert min(dist[-500:]) > 1.0
    dist = play("none", "nonsaturating")  # no spiral out, but no convergence either
    assert min(dist[-500:]) > 0.1


@pytest.mark.parametrize("loss_name", ["minimax", "nonsaturating"])
def test_r1_makes_dirac_gan_converge(loss_name):
    assert play("r1", loss_name)[-1] < 1e-6


@pytest.mark.parametrize("loss_name", ["minimax", "nonsaturating"])
def test_zero_centred_gradient_penalty_makes_dirac_gan_converge(loss_name):
    assert play("gp0", loss_name)[-1] < 1e-6
