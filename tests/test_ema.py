"""G_ema of a spectrally normalised net: its power-iteration vectors are not averaged but refreshed on
the average's own weight (ganscale/train/ema.py). The bit-for-bit match with AveragedModel and the
reload tests live in tests/test_engine_overhead.py."""

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.optim.swa_utils import AveragedModel

from ganscale.regularizers import spectral_norms
from ganscale.train.ema import EMA


def _sigma_estimate(net: nn.Module) -> tuple[float, float]:
    """(u^T W v from the stored vectors, the true largest singular value of W)."""
    (sn, weight), = spectral_norms(net)
    w = sn._reshape_weight_to_matrix(weight.detach())
    return float(torch.dot(sn._u, w @ sn._v)), float(torch.linalg.matrix_norm(w, 2))


def test_ema_keeps_spectral_norm_vectors_a_singular_pair_of_the_average():
    g = torch.Generator().manual_seed(0)
    A, B = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    G = spectral_norm(nn.Linear(3, 4, bias=False))
    avg = AveragedModel(G, use_buffers=True)
    ema = EMA(avg, G, decay=0.9)
    for it in range(60):
        with torch.no_grad():
            G.parametrizations.weight.original.copy_(B if it % 2 else A)  # the top singular pair turns
        G.train()
        for _ in range(20):  # G's own vectors converge on its weight, as in training
            G(torch.zeros(1, 3))
        est, true = _sigma_estimate(G)
        assert abs(est - true) < 1e-3 * true
        ema.update(copy=it == 0)
    # averaged vectors (the old rule) were no singular pair of the average: here sigma read 0.57 for a true 1.75
    est, true = _sigma_estimate(avg.module)
    assert abs(est - true) < 1e-2 * true, (est, true)
    avg.module.eval()  # eval mode reads the stored vectors: the normalised weight has norm 1
    assert abs(float(torch.linalg.matrix_norm(avg.module.weight.detach(), 2)) - 1) < 1e-2


def test_ema_copies_the_vectors_on_a_copy_and_leaves_the_source_alone():
    G = spectral_norm(nn.Linear(3, 4))
    G.train()
    G(torch.zeros(1, 3))
    avg = AveragedModel(G, use_buffers=True)
    with torch.no_grad():
        avg.module.parametrizations.weight[0]._u.mul_(-1)
    EMA(avg, G, decay=0.5).update(copy=True)
    assert torch.equal(avg.module.parametrizations.weight[0]._u, G.parametrizations.weight[0]._u)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    EMA(avg, G, decay=0.5).update()
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
