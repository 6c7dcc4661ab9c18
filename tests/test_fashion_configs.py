"""configs/fashion: every config loads and builds its nets at 32 px, and BigGAN's ablation switches
(EMA, orthogonal regularisation, self-attention, hierarchical z) are config keys that act."""

from __future__ import annotations

import glob
import os

import pytest
import torch

from conftest import REPO
from ganscale.config import load_config
from ganscale.data.base import DataInfo
from ganscale.nets import build_nets
from ganscale.nets.layers import SelfAttention2d
from ganscale.train.module import GANModule

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "fashion", "*.yaml")))
INFO = DataInfo("image", (1, 32, 32), 10)  # Fashion-MNIST packed with --resize 32
BIGGAN = os.path.join(REPO, "configs", "fashion", "biggan32.yaml")


def test_the_three_families_are_there():
    assert sorted(os.path.basename(p) for p in CONFIGS) == ["biggan32.yaml", "dcgan32.yaml", "sngan32.yaml"]


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_loads_and_builds(path):
    cfg = load_config([path])
    assert cfg.model.conditional and cfg.loss.name in ("hinge", "nonsaturating")
    torch.manual_seed(0)
    G, D = build_nets(cfg.model, INFO)
    z = G.sample_z(4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 3, 7, 9])
    with torch.no_grad():
        x = G(z, y)
        assert x.shape == (4, 1, 32, 32) and x.abs().max() <= 1
        assert D(x, y).shape == (4,)


def test_papers_recipes():
    big, sn = load_config([BIGGAN]), load_config([os.path.join(REPO, "configs", "fashion", "sngan32.yaml")])
    assert (big.loss.name, big.gan.n_disc, list(big.optim.D.betas)) == ("hinge", 2, [0.0, 0.999])
    assert big.model.biggan.ortho_weight == 1e-4 and big.gan.ema.enabled
    assert (sn.loss.name, sn.gan.n_disc, list(sn.optim.D.betas)) == ("hinge", 5, [0.0, 0.9])
    assert "D" in sn.reg.spectral_norm


def _biggan(*overrides):
    cfg = load_config([BIGGAN], list(overrides))
    torch.manual_seed(0)
    return cfg, *build_nets(cfg.model, INFO)


def test_ablation_ema():
    on, off = load_config([BIGGAN]), load_config([BIGGAN], ["gan.ema.enabled=false"])
    m_on, m_off = GANModule(on, INFO), GANModule(off, INFO)
    assert m_on.G_ema is not None and m_on.sampler is m_on.G_ema.module  # samples and evaluation use G_ema
    assert m_off.G_ema is None and m_off.sampler is m_off.G


def test_ablation_orthogonal_regularisation():
    _, G, _ = _biggan()
    reg = G.regularization()
    assert reg is not None and reg.item() > 0
    _, G0, _ = _biggan("model.biggan.ortho_weight=0")
    assert G0.regularization() is None


def test_ablation_self_attention():
    _, G, D = _biggan()
    assert sum(isinstance(m, SelfAttention2d) for m in [*G.modules(), *D.modules()]) == 2
    _, G0, D0 = _biggan("model.biggan.attn_res=0")
    assert not any(isinstance(m, SelfAttention2d) for m in [*G0.modules(), *D0.modules()])


def test_ablation_hierarchical_z():
    cfg, G, _ = _biggan()
    chunk = cfg.model.z_dim // 4  # the input layer and three blocks at 32 px
    assert G.hierarchical_z and G.linear.in_features == chunk
    G.eval()
    z = torch.randn(2, cfg.model.z_dim, generator=torch.Generator().manual_seed(0))
    z2 = z.clone()
    z2[:, -chunk:] += 1.0  # only the last block's chunk
    for m in G.modules():  # conditional gains start at 0 (a plain BN); give them a value
        if hasattr(m, "gain") and isinstance(m.gain, torch.nn.Linear):
            torch.nn.init.normal_(m.gain.weight, std=0.5)
    y = torch.tensor([1, 2])
    with torch.no_grad():
        assert not torch.allclose(G(z, y), G(z2, y), atol=1e-4)  # the chunk reaches its block's BatchNorm
    _, G0, _ = _biggan("model.biggan.hierarchical_z=false")
    assert not G0.hierarchical_z and G0.linear.in_features == cfg.model.z_dim
