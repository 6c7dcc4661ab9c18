"""Toy mixtures and the mode metrics of the PacGAN/VEEGAN protocol."""

import math

import pytest
import torch
from torch.utils.data import DataLoader

from ganscale.config import load_config
from ganscale.data.toy import ToyDataModule, mixture_means
from ganscale.metrics.modes import mode_metrics


def test_ring_means():
    cfg = load_config().data.toy
    m = mixture_means(cfg)
    assert m.shape == (8, 2)
    assert torch.allclose(m.norm(dim=1), torch.ones(8))
    assert torch.allclose(m[2], torch.tensor([0.0, 1.0]), atol=1e-6)


def test_grid_means_and_config_keys():
    cfg = load_config([], ["data.toy.mixture=grid", "data.toy.std=0.05"]).data.toy
    m = mixture_means(cfg)
    assert m.shape == (25, 2)
    assert sorted(set(m[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    cfg = load_config([], ["data.toy.mixture=grid", "data.toy.grid_size=3", "data.toy.spacing=1"]).data.toy
    assert sorted(set(mixture_means(cfg)[:, 1].tolist())) == [-1.0, 0.0, 1.0]
    cfg = load_config([], ["data.toy.num_modes=5", "data.toy.radius=2"]).data.toy
    assert torch.allclose(mixture_means(cfg).norm(dim=1), torch.full((5,), 2.0))


def test_stream_is_endless_deterministic_and_worker_count_invariant():
    cfg = load_config([], ["data.batch_size=16", "gan.n_disc=2"])
    dm = ToyDataModule(cfg)
    s = dm.stream()
    first = [b["x"] for _, b in zip(range(5), iter(s))]
    assert first[0].shape == (32, 2)  # n_disc * per-rank batch
    with_workers = [b["x"] for _, b in zip(range(5), DataLoader(dm.stream(), batch_size=None, num_workers=2))]
    for a, b in zip(first, with_workers):
        assert torch.equal(a, b)
    resumed = [b["x"] for _, b in zip(range(2), iter(dm.stream(start=3)))]
    assert torch.equal(resumed[0], first[3]) and torch.equal(resumed[1], first[4])


def test_samples_concentrate_on_the_modes():
    cfg = load_config([], ["data.batch_size=2500"])
    dm = ToyDataModule(cfg)
    x = next(iter(dm.stream()))["x"]
    m = mode_metrics(x, dm.means, cfg.data.toy.std)
    assert m["modes"] == 8 and m["hq_fraction"] > 0.98 and m["kl"] < 0.01


def test_mode_metrics_by_hand():
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    std = 1.0
    # 3 samples near mode 0 (one beyond 3 std), 1 within 3 std of mode 1, none near mode 2
    s = torch.tensor([[0.5, 0.0], [0.0, 2.9], [3.5, 0.0], [9.0, 0.0]])
    m = mode_metrics(s, means, std)
    assert m["modes"] == 2
    assert m["hq_fraction"] == pytest.approx(3 / 4)
    # PacGAN's reverse KL is over the histogram of the HQ samples only: 2 at mode 0, 1 at mode 1
    p = [2 / 3, 1 / 3]
    assert m["kl"] == pytest.approx(sum(q * math.log(q * 3) for q in p))
