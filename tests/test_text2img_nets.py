"""Text-to-image nets (StackGAN, StackGAN++, DF-GAN): shapes, seeded CA noise, the matching-aware
D, frozen Stage-I, MA-GP through DF-GAN's D, built through the config and the nets registry."""

import pytest
import torch

from ganscale.conditions import TextCondition
from ganscale.config.load import load_config
from ganscale.data.base import DataInfo
from ganscale.errors import ConfigError, UserError
from ganscale.losses import LOSSES
from ganscale.losses_text import ca_kl, colour_consistency, ma_gp, matching_aware_d, rolled
from ganscale.nets import build_nets

E = 12  # sentence size of the tests' text condition


def nets(arch: str, res: int, *overrides: str):
    small = {"stackgan": ["model.stackgan.gf=4", "model.stackgan.df=4", "model.stackgan.stage2_gf=4",
                          "model.stackgan.ca_dim=6", "model.stackgan.res_blocks=1"],
             "stackganpp": ["model.stackganpp.gf=2", "model.stackganpp.df=4", "model.stackganpp.ca_dim=6",
                            "model.stackganpp.res_blocks=1"],
             "dfgan": ["model.dfgan.nf=4"]}[arch]
    cfg = load_config([], [f"model.arch={arch}", "model.z_dim=8", f"model.{arch}.text_dim={E}", *small, *overrides])
    torch.manual_seed(0)
    return build_nets(cfg.model, DataInfo("image", (3, res, res), 0))


def text(n: int, seed: int = 1) -> TextCondition:
    g = torch.Generator().manual_seed(seed)
    return TextCondition(sentence=torch.randn(n, E, generator=g), words=torch.randn(n, 5, E, generator=g),
                         mask=torch.ones(n, 5, dtype=torch.bool))


def test_stackgan_stage1_shapes_seeded_ca_and_matching_aware_losses():
    G, D = nets("stackgan", 64)
    z, c = torch.randn(4, 8), text(4)
    x, ex = G(z, c, generator=torch.Generator().manual_seed(3))
    assert x.shape == (4, 3, 64, 64) and ex["mu"].shape == ex["logvar"].shape == (4, 6)
    assert x.abs().max() <= 1
    G.eval()
    a, _ = G(z, c, generator=torch.Generator().manual_seed(3))
    b, _ = G(z, c, generator=torch.Generator().manual_seed(3))
    d, _ = G(z, c, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.allclose(a, d)  # the engine's generator decides the CA noise
    real = torch.rand(4, 3, 64, 64) * 2 - 1
    wrong = c[rolled(4)]
    parts = matching_aware_d(LOSSES["nonsaturating"], D(real, c), D(real, wrong), D(x.detach(), c))
    assert D(real, c).shape == (4,) and parts["total"].requires_grad
    (parts["total"] + 2.0 * ca_kl(ex["mu"], ex["logvar"])).backward()
    with pytest.raises(ValueError, match="unconditional"):
        D(real, None)


def test_stackgan_stage2_builds_on_frozen_stage1():
    G, D = nets("stackgan", 256, "model.stackgan.stage=2")
    G.train()
    x, ex = G(torch.randn(2, 8), text(2))
    assert x.shape == (2, 3, 256, 256) and ex["stage1"].shape == (2, 3, 64, 64)
    assert not G.stage1.training  # Stage-I's BatchNorm keeps its statistics
    D(x, text(2)).mean().backward()
    assert all(p.grad is None for p in G.stage1.parameters())
    assert all(p.grad is not None for p in G.ca.parameters())
    with pytest.raises(UserError, match="stackgan makes RGB square images of 256"):
        nets("stackgan", 64, "model.stackgan.stage=2")


def test_stackganpp_tree_scales_joint_heads_and_colour_term():
    G, D = nets("stackganpp", 256)
    x, ex = G(torch.randn(2, 8), text(2))
    assert [s.shape[-1] for s in ex["scales"]] == [64, 128, 256] and x is ex["scales"][-1]
    for s in ex["scales"]:
        assert D(s, text(2)).shape == (2,) and D(s, None).shape == (2,)
    cc = colour_consistency(ex["scales"][2], ex["scales"][1])  # statistics, so sizes may differ
    cc.backward()
    assert G.to_rgb[2][0].weight.grad is not None and G.to_rgb[1][0].weight.grad is None  # coarse is detached
    G2, _ = nets("stackganpp", 128, "model.stackganpp.branches=2")
    assert G2(torch.randn(2, 8), text(2))[0].shape == (2, 3, 128, 128)
    with pytest.raises(UserError, match="256"):
        nets("stackganpp", 64)


def test_dfgan_fusion_matching_head_and_ma_gp():
    G, D = nets("dfgan", 64)
    z, c = torch.randn(3, 8), text(3)
    x, ex = G(z, c)
    assert x.shape == (3, 3, 64, 64) and ex == {}
    # precomputed embeddings (a plain [N, E] tensor) work as the condition too
    assert torch.allclose(G(z, c.sentence)[0], x)
    real = (torch.rand(3, 3, 64, 64) * 2 - 1).requires_grad_(True)
    sent = c.sentence.clone().requires_grad_(True)
    out = D(real, TextCondition(sentence=sent))
    gp = ma_gp(out, real, sent)
    assert gp.shape == () and float(gp.detach()) >= 0
    gp.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())
    # the head reads the text: another sentence gives other logits
    assert not torch.allclose(D(real, c), D(real, c[rolled(3)]))
    with pytest.raises(UserError, match=r"expects \[N, 12\]"):
        D(real, torch.randn(3, 7))
    with pytest.raises(UserError, match="needs a text condition"):
        G(z, None)
    G32, D32 = nets("dfgan", 32)
    assert D32(G32(z, c)[0], c).shape == (3,)


def test_dfgan_linear_output_is_unbounded_and_bad_values_are_named():
    from ganscale.errors import ConfigError

    G, _ = nets("dfgan", 32, "model.dfgan.output=linear")
    assert not any(isinstance(mod, torch.nn.Tanh) for mod in G.modules())
    with torch.no_grad():
        G.out[1].bias.fill_(-5.0)  # far below -1: a tanh G would sit at its flat end here
        x, _ = G(torch.randn(3, 8), text(3))
    assert float(x.min()) < -1.5
    with pytest.raises(ConfigError, match="output='sigmoid'"):
        load_config([], ["model.arch=dfgan", "model.dfgan.output=sigmoid"])


@pytest.mark.parametrize("res,g_widths", [(64, [32, 32, 16, 8, 4]), (256, [32, 32, 32, 32, 16, 8, 4])])
def test_dfgan_channel_table_is_the_authors(res, g_widths):
    # tobran/DF-GAN get_G_in_out_chs: nf * min(2^i, 8) reversed, so the last three doublings halve the
    # width at every size (a table fixed for 256 px kept 64 px at 8 nf to the end: 10x the CPU)
    G, D = nets("dfgan", res)
    assert [G.c0] + [b.conv1.out_channels for b in G.blocks] == g_widths
    assert [D.stem.out_channels] + [b.res[0].out_channels for b in D.blocks] == g_widths[::-1]


def test_dfgan_d_width_apart_from_g():
    from ganscale.errors import ConfigError

    G, D = nets("dfgan", 64, "model.dfgan.d_nf=2")
    assert [G.c0] + [b.conv1.out_channels for b in G.blocks] == [32, 32, 16, 8, 4]  # G keeps nf=4
    assert [D.stem.out_channels] + [b.res[0].out_channels for b in D.blocks] == [2, 4, 8, 16, 16]
    assert D.head[0].out_channels == 4
    with pytest.raises(ConfigError, match="d_nf=-1 must be >= 0"):
        load_config([], ["model.arch=dfgan", "model.dfgan.d_nf=-1"])


def test_dfgan_projection_head_reads_the_sentence_and_takes_ma_gp():
    from ganscale.errors import ConfigError
    from ganscale.losses_text import ma_gp
    from ganscale.nets.text2img.dfgan import TextProjection

    _, D = nets("dfgan", 32, "model.dfgan.d_head=projection")
    assert isinstance(D.head, TextProjection)
    x = torch.randn(3, 3, 32, 32, requires_grad=True)
    s = torch.randn(3, E, requires_grad=True)
    h = D.blocks(D.stem(x)).detach()
    phi = torch.nn.functional.leaky_relu(h, 0.2).sum((2, 3))  # by hand: w^T phi + (V s)^T phi
    expected = phi @ D.head.linear.weight[0] + D.head.linear.bias + ((s @ D.head.embed.weight.T) * phi).sum(1)
    out = D(x, s)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(D(x, s.roll(1, 0)), out)  # the caption changes the score
    assert torch.isfinite(ma_gp(out, x, s))
    with pytest.raises(ConfigError, match="d_head='concatenate'"):
        load_config([], ["model.arch=dfgan", "model.dfgan.d_head=concatenate"])


def test_text2img_config_problems_are_named():
    from ganscale.errors import ConfigError

    with pytest.raises(ConfigError, match="stage=3 must be 1") as e:
        load_config([], ["model.arch=stackgan", "model.stackgan.stage=3", "model.stackganpp.branches=4"])
    assert "branches=4" in str(e.value)


def test_shipped_configs_load_and_build():
    """Every configs/text2img file loads and builds its model at its data size, with the text
    dimension of the matching encoder config in configs/text/."""
    import glob
    import os

    from ganscale.text.config import TextEncoderConfig

    files = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "text2img", "*.yaml")))
    assert len(files) == 8
    for path in files:
        cfg = load_config([path])
        t = cfg.data.shards.transform
        res = t.crop_size or t.resize or 64
        G, D = build_nets(cfg.model, DataInfo("image", (3, res, res), 0))
        family = getattr(cfg.model, cfg.model.arch)
        enc = load_config([path.replace("text2img", "text").rsplit("_", 1)[0] + "_damsm.yaml"], ["data=x"],
                          schema=TextEncoderConfig)
        assert family.text_dim == enc.dim, path
        assert sum(p.numel() for p in G.parameters()) > 0 and sum(p.numel() for p in D.parameters()) > 0


@pytest.mark.parametrize("act", ["relu", "leaky", "glu"])
def test_conditioning_augmentation_follows_each_reference_code(act):
    """relu: StackGAN-Pytorch (sigma >= 1); leaky: the StackGAN paper's TF code (leaky 0.2, the second
    half is log sigma); glu: StackGAN-v2 / AttnGAN (a layer of 4 ca_dim, halved by a GLU)."""
    from ganscale.nets.text2img.common import CondAugment

    torch.manual_seed(0)
    ca = CondAugment(6, 3, act)
    s = torch.randn(5, 6) * 3
    c_hat, mu, logvar = ca(s, torch.Generator().manual_seed(1))
    h = s @ ca.fc.weight.T + ca.fc.bias
    if act == "relu":
        want_mu, want_logvar = h[:, :3].clamp_min(0), h[:, 3:].clamp_min(0)
    elif act == "leaky":
        lk = torch.where(h > 0, h, 0.2 * h)
        want_mu, want_logvar = lk[:, :3], 2 * lk[:, 3:]
    else:
        glu = h[:, :6] * torch.sigmoid(h[:, 6:])
        want_mu, want_logvar = glu[:, :3], glu[:, 3:]
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    assert ca.fc.out_features == (12 if act == "glu" else 6)
    assert torch.allclose(mu, want_mu, atol=1e-6) and torch.allclose(logvar, want_logvar, atol=1e-6)
    assert torch.allclose(c_hat, want_mu + torch.exp(want_logvar / 2) * eps, atol=1e-5)
    assert (bool((logvar < 0).any()) if act != "relu" else bool((logvar >= 0).all()))  # sigma < 1 reachable


def test_stackganpp_defaults_to_glu_and_a_bad_ca_activation_is_listed():
    assert nets("stackganpp", 64, "model.stackganpp.branches=1")[0].ca.act == "glu"  # StackGAN-v2's CA_NET
    assert nets("stackgan", 64)[0].ca.act == "relu"  # StackGAN-Pytorch's
    assert nets("stackgan", 64, "model.stackgan.ca_act=leaky")[0].ca.act == "leaky"
    with pytest.raises(UserError, match="ca_act='tanh'"):
        load_config([], ["model.arch=stackgan", "model.stackgan.ca_act=tanh"])


def test_word_attention_by_hand_and_padding_never_attended():
    from ganscale.nets.text2img.attention import WordAttention
    att = WordAttention(ch=2, word_dim=3)
    with torch.no_grad():
        att.proj.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))  # keeps the first two dims
    h = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).T.reshape(1, 2, 1, 2)         # pixels (1, 0) and (0, 2)
    words = torch.tensor([[[1.0, 0.0, 9.0], [0.0, 1.0, 9.0], [5.0, 5.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])                                # the third is padding
    ctx, attn = att(h, words, mask)
    # pixel 0 scores the words 1 and 0, pixel 1 scores them 0 and 2; the padding (score 5, 10) gets 0
    a0 = torch.softmax(torch.tensor([1.0, 0.0]), 0)
    a1 = torch.softmax(torch.tensor([0.0, 2.0]), 0)
    torch.testing.assert_close(attn[0, :, 0], torch.cat([a0, torch.zeros(1)]))
    torch.testing.assert_close(attn[0, :, 1], torch.cat([a1, torch.zeros(1)]))
    torch.testing.assert_close(ctx[0, :, 0, 0], a0)                           # sum of the projected words
    torch.testing.assert_close(ctx[0, :, 0, 1], a1)


@pytest.mark.parametrize("res", [8, 16, 32])
def test_stackgan_word_attention_reads_the_words(res):
    G, _ = nets("stackgan", 64, f"model.stackgan.word_attention={res}")
    assert G.attention.att.proj.out_features == G.init.ups[G.before_attention - 1][1].out_channels
    G.eval()
    c = text(4)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(3)
    x, _ = G(z, c, generator=g)
    assert x.shape == (4, 3, 64, 64)
    # the same sentence, other words: other images (the plain StackGAN reads only the sentence)
    other = TextCondition(c.sentence, text(4, seed=5).words, c.mask)
    y, _ = G(z, other, generator=torch.Generator().manual_seed(3))
    assert (x - y).abs().max() > 1e-4
    plain, _ = nets("stackgan", 64)
    plain.eval()
    p1 = plain(z, c, generator=torch.Generator().manual_seed(3))[0]
    p2 = plain(z, other, generator=torch.Generator().manual_seed(3))[0]
    torch.testing.assert_close(p1, p2)


def test_stackgan_word_attention_needs_words_and_a_valid_resolution():
    G, _ = nets("stackgan", 64, "model.stackgan.word_attention=16")
    with pytest.raises(UserError, match="word_attention needs the caption's word features"):
        G(torch.randn(2, 8), torch.randn(2, E))  # precomputed sentence embeddings only
    with pytest.raises(ConfigError, match="word_attention=12 must be 0"):
        load_config([], ["model.arch=stackgan", "model.stackgan.word_attention=12"])


def test_stackgan_projection_head_by_hand_keeps_the_layout():
    _, D = nets("stackgan", 64, "model.stackgan.d_head=projection")
    net = D.net
    assert not hasattr(net, "joint") and net.project.out_features == net.linear.in_features
    D.eval()
    x, s = torch.randn(3, 3, 64, 64), torch.randn(3, E)
    phi = net.trunk(x).flatten(1)
    expect = phi @ net.linear.weight[0] + net.linear.bias + ((s @ net.project.weight.T) * phi).sum(1)
    torch.testing.assert_close(D(x, s), expect)
    # phi is the 4x4 map, not its sum: features moved to another place score differently against the text
    h = net.trunk(x)
    moved = h.roll(2, dims=3).flatten(1)
    cond = lambda p: ((s @ net.project.weight.T) * p).sum(1)  # noqa: E731
    assert (cond(moved) - cond(phi)).abs().min() > 1e-4
    with pytest.raises(ConfigError, match="d_head='pool': choose concat or projection"):
        load_config([], ["model.arch=stackgan", "model.stackgan.d_head=pool"])
