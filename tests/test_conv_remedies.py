"""Mode-collapse remedies in the conv discriminators (DCGAN, SNGAN, BigGAN): packing at D's input,
minibatch stddev before D's last block, minibatch discrimination before the output layer."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from ganscale.config import load_config
from ganscale.data.base import DataInfo
from ganscale.errors import UserError
from ganscale.nets.remedies import MinibatchDiscrimination, MinibatchStdDev
from ganscale.train.module import GANModule
from tests.test_image_nets import differs, tiny

FAMILIES = ["dcgan", "sngan", "biggan"]
RES = 32
PACK = "model.remedies.pack=2"
MBSTD = "model.remedies.minibatch_stddev.enabled=true"
MBD = "model.remedies.minibatch_discrimination.enabled=true"


def d_of(arch: str, *extra: str, num_classes: int = 5):
    _, _, D = tiny(arch, RES, 1, num_classes, *extra)
    return D.eval()  # spectral norm: no power iteration per call, so repeated calls see one D


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, RES, RES, generator=torch.Generator().manual_seed(seed))


LABELS = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])


@pytest.mark.parametrize("arch", FAMILIES)
@pytest.mark.parametrize("m", [2, 4])
def test_packing_gives_one_logit_per_pack_that_sees_only_its_members(arch, m):
    D = d_of(arch, f"model.remedies.pack={m}")
    x = images(8)
    with torch.no_grad():
        out, h = D(x, LABELS, return_features=True)
        assert out.shape == (8 // m,) and h.shape[0] == 8 // m
        x2 = x.clone()
        x2[m] += 1.0  # first member of pack 1
        out2 = D(x2, LABELS)
        y2 = LABELS.clone()
        y2[0] = 4  # a label of pack 0
        out3 = D(x, y2)
    assert differs(out[1], out2[1])
    torch.testing.assert_close(out2[[i for i in range(8 // m) if i != 1]], out[[i for i in range(8 // m) if i != 1]])
    assert differs(out[0], out3[0])  # the pack's labels condition its logit
    torch.testing.assert_close(out3[1:], out[1:])
    first = next(mod for mod in D.modules() if isinstance(mod, torch.nn.Conv2d))
    assert first.in_channels % m == 0 and first.in_channels >= m  # m samples side by side along channels


def _depends_on_others(D, i: int = 0, j: int = 1) -> bool:
    """Does D's logit for sample i change when another sample j of the batch changes?"""
    x = images(8)
    x2 = x.clone()
    x2[j] = images(1, seed=5)[0] * 3
    with torch.no_grad():
        a, b = D(x, LABELS), D(x2, LABELS)
    return differs(a[i], b[i])


@pytest.mark.parametrize("arch", FAMILIES)
def test_minibatch_stddev_sits_before_the_last_block_and_couples_the_batch(arch):
    plain = d_of(arch, "model.dcgan.D_norm=none")
    assert not _depends_on_others(plain)  # eval mode, no batch layer: samples are judged alone
    D = d_of(arch, MBSTD, "model.remedies.minibatch_stddev.group_size=8", "model.dcgan.D_norm=none")
    assert _depends_on_others(D)
    seen = []
    mbstd = next(mod for mod in D.modules() if isinstance(mod, MinibatchStdDev))
    mbstd.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].shape, out.shape)))
    with torch.no_grad():
        D(images(8), LABELS)
    (cin, cout), = seen
    assert cout[1] == cin[1] + 1 and cin[2] == cin[3] and cin[2] in (4, 8)  # bottom maps, one more channel
    if arch == "dcgan":  # the input of the last strided conv
        assert D.convs[D.last_block].in_channels == cout[1]
    else:  # the input of the last ResNet block
        assert D.blocks[-1].conv1.in_channels == cout[1]


@pytest.mark.parametrize("arch", FAMILIES)
def test_minibatch_discrimination_acts_on_the_final_features(arch):
    D = d_of(arch, MBD, "model.dcgan.D_norm=none")
    assert isinstance(D.mbd, MinibatchDiscrimination)
    with torch.no_grad():
        _, h = D(images(8), LABELS, return_features=True)
    assert D.mbd.in_features == h.shape[1]
    assert D.head.linear.in_features == h.shape[1] + D.mbd.num_kernels
    assert _depends_on_others(D)


@pytest.mark.parametrize("arch", FAMILIES)
def test_every_remedy_together_stays_twice_differentiable_for_r1(arch):
    """R1 differentiates D's gradient with respect to its input once more: the penalty's gradient
    reaches the remedy layers' and the first conv's parameters, finite and non-zero."""
    _, _, D = tiny(arch, RES, 1, 5, PACK, MBSTD, MBD, "model.remedies.minibatch_stddev.group_size=2")
    x = images(8).requires_grad_(True)
    (g,) = torch.autograd.grad(D(x, LABELS).sum(), x, create_graph=True)
    penalty = g.square().sum()
    penalty.backward()
    first = next(mod for mod in D.modules() if isinstance(mod, torch.nn.Conv2d))
    weight = getattr(first, "parametrizations", None)
    w = weight.weight.original if weight is not None else first.weight
    for p in (D.mbd.T, w):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0


def test_minibatch_stddev_layer_is_twice_differentiable_on_maps():
    x = torch.randn(4, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: MinibatchStdDev(2, 2)(t), (x,))


@pytest.mark.parametrize("arch", FAMILIES)
def test_d_without_remedies_keeps_its_parameters(arch):
    """Checkpoints of Ds trained before the remedies reached the conv families still load."""
    D = d_of(arch)
    assert not any(k.startswith("mbd") for k in D.state_dict())
    assert D.mbstd is None


@pytest.mark.parametrize("arch", FAMILIES)
def test_stddev_features_must_divide_the_channels(arch):
    with pytest.raises(UserError, match="minibatch_stddev.num_features=3 must divide"):
        tiny(arch, RES, 1, 5, MBSTD, "model.remedies.minibatch_stddev.num_features=3")


@pytest.mark.parametrize("arch", FAMILIES)
def test_one_training_iteration_with_every_remedy_and_r1(arch):
    """A real G and D step (two D steps, lazy R1 on) with packing, both batch layers and feature
    matching in each conv family: finite stats, both nets move."""
    ov = [f"model.arch={arch}", "model.z_dim=32", f"model.{arch}.G_ch=2", f"model.{arch}.D_ch=2", "data.batch_size=8",
          "gan.n_disc=2", "reg.r1_gamma=1.0", PACK, MBSTD, MBD, "model.remedies.minibatch_stddev.group_size=2",
          "model.remedies.feature_matching.weight=1.0", "gan.ema.enabled=false"]
    if arch == "biggan":
        ov += ["model.biggan.attn_res=16", "model.biggan.shared_dim=8"]
    cfg = load_config([], ov)
    L.seed_everything(0, verbose=False)
    m = GANModule(cfg, DataInfo("image", (1, RES, RES), 5))
    fabric = L.Fabric(accelerator="cpu", devices=1)
    fabric.setup(m, *m.configure_optimizers())
    g0 = {k: v.detach().clone() for k, v in m.G.state_dict().items()}
    d0 = {k: v.detach().clone() for k, v in m.D.state_dict().items()}
    m.training_step({"x": images(16).clamp(-1, 1), "y": torch.arange(16) % 5}, 0)
    assert all(torch.isfinite(v).all() for v in m.stats.values())
    assert "reg/D/r1" in m.stats
    assert m.num_skipped == {"D": 0, "G": 0}
    assert any(not torch.equal(v, m.G.state_dict()[k]) for k, v in g0.items())
    assert any(not torch.equal(v, m.D.state_dict()[k]) for k, v in d0.items())


@pytest.mark.parametrize("arch", FAMILIES)
def test_unconditional_conv_ds_take_the_remedies_too(arch):
    D = d_of(arch, PACK, MBSTD, MBD, num_classes=0)
    with torch.no_grad():
        assert D(images(8)).shape == (4,)
