"""Image families (DCGAN, SNGAN, BigGAN): shapes and conditioning at every resolution with tiny
widths, spectral norm, the projection head, truncation, hierarchical z, orthogonal regularization."""

from __future__ import annotations

import glob
import math
import os

import pytest
import torch
from scipy import stats
from torch.utils.data import DataLoader

from conftest import REPO
from ganscale.data.base import GANDataModule

from ganscale.config import load_config
from ganscale.data.base import DataInfo
from ganscale.errors import UserError
from ganscale.nets import build_nets
from ganscale.nets.biggan import BigGANGenerator
from ganscale.nets.layers import SelfAttention2d, orthogonal_penalty

Z_DIM = {28: 24, 32: 32, 64: 40, 128: 48, 256: 56}  # divisible by 1 + number of G blocks
CASES = [("dcgan", r) for r in (28, 32, 64)] + [("sngan", r) for r in (28, 32, 64, 128, 256)] + \
        [("biggan", r) for r in (32, 64, 128, 256)]


def differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Not equal up to float noise, whatever the scale of a (tiny nets give tiny outputs)."""
    return bool((a - b).abs().max() > 1e-4 * a.abs().max())


def tiny(arch: str, res: int, channels: int = 3, num_classes: int = 5, *extra: str):
    ov = [f"model.arch={arch}", f"model.z_dim={Z_DIM[res]}", f"model.{arch}.G_ch=2", f"model.{arch}.D_ch=2"]
    if arch == "biggan":
        ov += [f"model.biggan.attn_res={min(res // 2, 32)}", "model.biggan.shared_dim=8"]
    cfg = load_config([], ov + list(extra))
    info = DataInfo("image", (channels, res, res), num_classes)
    torch.manual_seed(0)
    G, D = build_nets(cfg.model, info)
    return cfg, G, D


@pytest.mark.parametrize("arch,res", CASES)
def test_shapes_and_conditioning(arch, res):
    _, G, D = tiny(arch, res)
    n = 3
    z = G.sample_z(n, generator=torch.Generator().manual_seed(1))
    y0, y1 = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 0])
    # eval: G's running stats (a sample's output must not depend on the rest of the batch), and no
    # spectral-norm power iteration in D between calls, so two calls on the same input run the same
    # ops on the same weights and agree bit for bit on any CPU
    G.eval(), D.eval()
    with torch.no_grad():
        x0, x1 = G(z, y0), G(z, y1)
        assert x0.shape == (n, 3, res, res)
        assert x0.abs().max() <= 1.0
        assert G.num_classes == 5 and D.num_classes == 5
        # labels change G's output for the same z, and D's output for the same image
        for m in G.modules():  # conditional gains start at 0 (a plain BN); give them a value
            if hasattr(m, "gain") and isinstance(m.gain, torch.nn.Linear):
                torch.nn.init.normal_(m.gain.weight)
        x0, x1 = G(z, y0), G(z, y1)
        assert differs(x0, x1)
        d0, d1 = D(x0, y0), D(x0, y1)
        assert d0.shape == (n,)
        assert differs(d0, d1)
        out, feats = D(x0, y0, return_features=True)
        assert torch.equal(out, d0) and feats.shape[0] == n


@pytest.mark.parametrize("arch", ["dcgan", "sngan", "biggan"])
def test_unconditional_mode_ignores_labels(arch):
    _, G, D = tiny(arch, 32, 3, 5, "model.conditional=false")
    assert G.num_classes == 0 and D.num_classes == 0
    G.eval(), D.eval()  # eval: no power iteration between the two calls
    z = G.sample_z(2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = G(z)
        assert torch.equal(x, G(z, torch.tensor([1, 2])))
        assert torch.equal(D(x), D(x, torch.tensor([3, 4])))


def test_grayscale_28px_mnist_shapes():
    for arch in ("dcgan", "sngan"):
        _, G, D = tiny(arch, 28, channels=1, num_classes=10)
        x = G(G.sample_z(4), torch.arange(4))
        assert x.shape == (4, 1, 28, 28) and D(x, torch.arange(4)).shape == (4,)


def test_projection_discriminator_uses_the_label():
    _, G, D = tiny("biggan", 32)
    x = torch.randn(4, 3, 32, 32)
    y1, y2 = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 4, 4, 4])
    D.eval()  # no power iteration between the calls: both see the same weights, so h is the same
    with torch.no_grad():
        o1, h = D(x, y1, return_features=True)
        o2 = D(x, y2)
        # the label enters only through <embed(y), phi(x)>
        expected = ((D.head.embed(y1) - D.head.embed(y2)) * h).sum(1)
    # the same value summed in another order: float32 rounding of outputs of this size, not more
    assert torch.allclose(o1 - o2, expected, atol=1e-5)
    assert (o1 - o2).abs().min() > 0
    with pytest.raises(ValueError, match="pass labels"):
        D(x)


def _sn_sigma(m: torch.nn.Module) -> float:
    w = m.weight  # the normalised weight the layer uses
    if isinstance(m, torch.nn.ConvTranspose2d):
        w = w.transpose(0, 1)
    return float(torch.linalg.matrix_norm(w.flatten(1), ord=2))


def test_spectral_norm_bounds_every_layer_of_biggan():
    _, G, D = tiny("biggan", 32)
    sn = [m for net in (G, D) for m in net.modules()
          if hasattr(m, "parametrizations") and "weight" in m.parametrizations]
    assert len(sn) > 20
    assert not hasattr(G.shared, "parametrizations")  # the shared embedding stays unnormalised
    assert "weight" in D.head.embed.parametrizations  # the projection embedding is normalised
    # blow the raw weights up: without the normalisation sigma would be >> 1
    with torch.no_grad():
        for m in sn:
            m.parametrizations.weight.original.mul_(25.0)
    raw = max(float(torch.linalg.matrix_norm(m.parametrizations.weight.original.detach().flatten(1), ord=2)) for m in sn)
    assert raw > 5
    G.train(), D.train()
    with torch.no_grad():  # one power iteration per forward in training mode
        for _ in range(30):
            x = G(G.sample_z(4), torch.arange(4))
            D(x, torch.arange(4))
    sigmas = [_sn_sigma(m) for m in sn]
    assert max(sigmas) < 1.0 + 1e-3, max(sigmas)
    assert min(sigmas) > 0.95, min(sigmas)


def test_spectral_norm_from_reg_config_on_sngan():
    cfg, _, _ = tiny("sngan", 32)
    from ganscale.train.module import GANModule

    cfg = load_config([], ["model.arch=sngan", "model.z_dim=16", "model.sngan.G_ch=2", "model.sngan.D_ch=2",
                           "reg.spectral_norm=[D]"])
    module = GANModule(cfg, DataInfo("image", (1, 28, 28), 10))
    d_layers = [m for m in module.D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding))]
    assert d_layers and all("weight" in m.parametrizations for m in d_layers)
    assert not any(hasattr(m, "parametrizations") for m in module.G.modules())


@pytest.mark.parametrize("t", [0.5, 1.0, 2.0])
def test_truncation_draws_from_the_truncated_normal(t):
    _, G, _ = tiny("biggan", 32)
    z = G.sample_z(20000, generator=torch.Generator().manual_seed(0), truncation=t)
    assert z.shape == (20000, G.z_dim)
    assert z.abs().max() <= t
    # Kolmogorov-Smirnov against N(0, 1) truncated to [-t, t]
    ks = stats.kstest(z[:, 0].numpy(), stats.truncnorm(-t, t).cdf)
    assert ks.pvalue > 1e-3, ks
    # its variance is 1 - 2 t phi(t) / (2 Phi(t) - 1)
    var = 1 - 2 * t * stats.norm.pdf(t) / (2 * stats.norm.cdf(t) - 1)
    assert abs(float(z.var()) - var) < 0.02
    plain = G.sample_z(20000, generator=torch.Generator().manual_seed(0))
    assert plain.abs().max() > t and abs(float(plain.var()) - 1) < 0.03
    same = G.sample_z(20000, generator=torch.Generator().manual_seed(0), truncation=t)
    assert torch.equal(z, same)


def test_hierarchical_z_feeds_every_block():
    _, G, _ = tiny("biggan", 64)
    assert G.hierarchical_z and G.chunk == Z_DIM[64] // 5
    G.eval()
    for m in G.modules():
        if hasattr(m, "gain") and isinstance(m.gain, torch.nn.Linear):
            torch.nn.init.normal_(m.gain.weight)
    z = G.sample_z(2, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1])
    base = G(z, y)
    for slot in range(5):  # the input chunk and the chunk of each of the 4 blocks matter
        z2 = z.clone()
        z2[:, slot * G.chunk:(slot + 1) * G.chunk] += 1.0
        assert differs(G(z2, y), base), f"chunk {slot} has no effect"
    with pytest.raises(UserError, match="split evenly"):
        tiny("biggan", 64, 3, 5, "model.z_dim=41")


def test_attention_sits_at_the_configured_resolution():
    _, G, D = tiny("biggan", 128, 3, 5, "model.biggan.attn_res=64")
    seen = []
    for net in (G, D):
        for m in net.modules():
            if isinstance(m, SelfAttention2d):
                m.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[-1]))
    with torch.no_grad():
        D(G(G.sample_z(2), torch.tensor([0, 1])), torch.tensor([0, 1]))
    assert seen == [64, 64]


def test_orthogonal_regularization():
    w = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])
    # W W^T = [[5, 2], [2, 2]]: off-diagonal squared sum = 2 * 2^2
    assert float(orthogonal_penalty([w])) == pytest.approx(8.0)
    q, _ = torch.linalg.qr(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)))
    assert float(orthogonal_penalty([q.t() * 3.0])) == pytest.approx(0.0, abs=1e-8)  # orthogonal rows, any norm
    _, G, _ = tiny("biggan", 32, 3, 5, "model.biggan.ortho_weight=0.5")
    assert isinstance(G, BigGANGenerator)
    weights = G.ortho_weights()
    assert all(not torch.equal(w, G.shared.weight) for w in weights)
    with torch.no_grad():
        for w in weights:
            w.add_(0.1)
    reg = G.regularization()
    assert float(reg) == pytest.approx(0.5 * float(orthogonal_penalty(weights)), rel=1e-5)
    assert float(reg) > 0
    reg.backward()
    assert weights[0].grad is not None
    _, G0, _ = tiny("biggan", 32, 3, 5, "model.biggan.ortho_weight=0")
    assert G0.regularization() is None


@pytest.mark.parametrize("bad,match", [
    (("sngan", 48), "supported resolutions"),
    (("dcgan", 128), "supports square images of 28, 32, 64"),
])
def test_unsupported_resolution_is_a_user_error(bad, match):
    arch, res = bad
    cfg = load_config([], [f"model.arch={arch}"])
    with pytest.raises(UserError, match=match):
        build_nets(cfg.model, DataInfo("image", (3, res, res), 0))


def test_bad_channel_table_and_attention_are_user_errors():
    cfg = load_config([], ["model.arch=biggan", "model.z_dim=120", "model.biggan.G_mult=[4,2]",
                           "model.biggan.attn_res=48"])
    with pytest.raises(UserError) as e:
        build_nets(cfg.model, DataInfo("image", (3, 64, 64), 10))
    assert "G_mult" in str(e.value) and "attn_res=48" in str(e.value)
    cfg = load_config([], ["model.arch=biggan"])
    with pytest.raises(UserError, match="square images"):
        build_nets(cfg.model, DataInfo("points", (2,), 0))


def test_channel_multipliers_scale_widths():
    _, G, D = tiny("biggan", 64)
    _, G2, D2 = tiny("biggan", 64, 3, 5, "model.biggan.G_ch=4", "model.biggan.D_ch=4")
    assert G2.blocks[0].conv1.out_channels == 2 * G.blocks[0].conv1.out_channels
    assert D2.blocks[-1].conv2.out_channels == 2 * D.blocks[-1].conv2.out_channels
    assert [b.conv1.out_channels for b in G.blocks] == [2 * m for m in (16, 8, 4, 2)]
    assert math.isclose(sum(p.numel() for p in G2.parameters()) / sum(p.numel() for p in G.parameters()), 4, rel_tol=0.5)


IMAGENET = sorted(glob.glob(os.path.join(REPO, "configs", "imagenet", "*.yaml")))


def test_imagenet_configs_are_shipped():
    assert [os.path.basename(p) for p in IMAGENET] == ["biggan128.yaml", "biggan256.yaml", "biggan64.yaml"]


@pytest.mark.parametrize("path", IMAGENET, ids=[os.path.basename(p) for p in IMAGENET])
def test_imagenet_config_loads_and_builds_its_model(path):
    cfg = load_config([path])
    res = cfg.data.shards.transform.crop_size
    # the BigGAN paper's training settings
    assert cfg.model.arch == "biggan" and cfg.loss.name == "hinge" and cfg.gan.n_disc == 2
    assert cfg.data.batch_size * cfg.trainer.devices * cfg.trainer.num_nodes == 2048  # global batch
    assert (cfg.optim.G.lr, cfg.optim.D.lr) == (5e-5, 2e-4)
    assert cfg.optim.G.betas == cfg.optim.D.betas == [0.0, 0.999]
    assert (cfg.gan.ema.decay, cfg.gan.ema.start_iter) == (0.9999, 20000)
    assert cfg.model.biggan.ortho_weight == 1e-4 and cfg.model.biggan.spectral_norm
    assert cfg.reg.r1_gamma == 0 and cfg.reg.gp_weight == 0
    assert cfg.eval.num_samples == 50000 and cfg.eval.extractor == "inception"
    y = torch.tensor([0, 999])
    with torch.device("meta"):  # full width without allocating or initialising the weights
        G, D = build_nets(cfg.model, DataInfo("image", (3, res, res), 1000))
        x = G(G.sample_z(2, device="meta"), y)
        out = D(x, y)
    assert x.shape == (2, 3, res, res) and out.shape == (2,)
    assert G.chunk * (len(G.blocks) + 1) == cfg.model.z_dim
    n_G, n_D = (sum(p.numel() for p in net.parameters()) for net in (G, D))
    if res == 128:  # the paper's parameter counts of BigGAN at 128 px: G 70.4M, D 88.0M
        assert round(n_G / 1e6, 1) == 70.4 and round(n_D / 1e6, 1) == 88.0


class _RandomImages(GANDataModule):
    def __init__(self, cfg, num_batches=2):
        super().__init__(cfg)
        self.info = DataInfo("image", (3, 32, 32), 5)
        n = cfg.data.batch_size * cfg.gan.n_disc
        g = torch.Generator().manual_seed(0)
        self.batches = [{"x": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, "y": torch.randint(5, (n,), generator=g)}
                        for _ in range(num_batches)]

    def iteration_loader(self):
        return DataLoader(self.batches, batch_size=None)


def test_biggan_trains_with_the_orthogonal_penalty_inside_the_single_g_step():
    import lightning as L

    from ganscale.train.module import GANModule

    cfg = load_config([], ["model.arch=biggan", "model.z_dim=32", "model.biggan.G_ch=2", "model.biggan.D_ch=2",
                           "model.biggan.attn_res=16", "model.biggan.shared_dim=8", "loss.name=hinge", "gan.n_disc=2",
                           "data.batch_size=4", "gan.ema.start_iter=0", "trainer.max_iters=2", "reg.r1_gamma=0"])
    dm = _RandomImages(cfg)
    module = GANModule(cfg, dm.info)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1)
    trainer.fit(module, datamodule=dm)
    assert module.iteration == 2
    opt_G, opt_D = trainer.optimizers
    w = module.G.blocks[0].conv1.parametrizations.weight.original
    assert int(opt_G.state[w]["step"]) == 2  # one G step per iteration: the penalty joined G's loss
    d_param = next(module.D.parameters())
    assert int(opt_D.state[d_param]["step"]) == 4  # n_disc = 2
    assert float(module.stats["reg/G/net"]) > 0
    assert module.sample(3, y=torch.tensor([0, 1, 2]), truncation=0.5).shape == (3, 3, 32, 32)
