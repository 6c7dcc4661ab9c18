"""BigGAN's standing statistics (ganscale/nets/standing_stats.py): G's BatchNorm statistics
re-estimated as the plain average over training-mode batches, on a copy; the engine's context that
samples with them; the config key."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from conftest import REPO
from ganscale.config import load_config
from ganscale.data.base import DataInfo
from ganscale.errors import ConfigError
from ganscale.nets.standing_stats import has_batchnorm, with_standing_stats
from ganscale.train.module import GANModule


def test_statistics_are_the_average_of_the_batches_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=0.1))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batches = [torch.randn(8, 3) * (i + 1) + i for i in range(3)]
    calls = iter(batches)
    out = with_standing_stats(net, lambda m: m(next(calls)), num_batches=3)

    with torch.no_grad():
        h = [net[0](b) for b in batches]  # the linear layer is shared: same weights in the copy
    bn = out[1]
    assert torch.allclose(bn.running_mean, torch.stack([x.mean(0) for x in h]).mean(0), atol=1e-6)
    assert torch.allclose(bn.running_var, torch.stack([x.var(0, unbiased=True) for x in h]).mean(0), atol=1e-5)
    assert int(bn.num_batches_tracked) == 3 and bn.momentum == 0.1 and not out.training
    for k, v in net.state_dict().items():  # the source network is untouched
        assert torch.equal(v, before[k]), k
    assert out is not net


def test_a_net_without_batchnorm_is_returned_as_is():
    net = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    assert not has_batchnorm(net)
    assert with_standing_stats(net, lambda m: m(torch.randn(2, 3)), 2) is net
    with pytest.raises(ValueError, match="num_batches=0"):
        with_standing_stats(nn.BatchNorm1d(2), lambda m: None, 0)


def test_the_engine_samples_with_standing_statistics_inside_the_context_only():
    # the MNIST DCGAN: conditional BatchNorm in G
    cfg = load_config([os.path.join(REPO, "configs", "mnist", "dcgan.yaml")],
                      ["model.dcgan.G_ch=8", "model.dcgan.D_ch=8", "data.batch_size=16"])
    module = GANModule(cfg, DataInfo("image", (1, 28, 28), 10))
    G = module.sampler
    assert G is module.G_ema.module and has_batchnorm(G)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    plain = module.sample(16, seed=1)
    with module.standing_stats(3):
        inside = module.sampler
        assert inside is not G and not inside.training
        counts = {int(m.num_batches_tracked) for m in inside.modules() if isinstance(m, nn.BatchNorm2d)}
        assert counts == {3}  # every BatchNorm of G saw the 3 batches (of the training batch size)
        standing = module.sample(16, seed=1)
        assert torch.equal(standing, module.sample(16, seed=1))
    assert not torch.equal(standing, plain)  # fresh G: running statistics 0/1 against the batches' own
    assert module.sampler is G
    for k, v in G.state_dict().items():  # the run's G_ema is untouched
        assert torch.equal(v, before[k]), k
    assert torch.equal(module.sample(16, seed=1), plain)
    with module.standing_stats(0):  # 0 = off
        assert module.sampler is G


def test_the_config_key_is_checked():
    assert load_config([], ["eval.standing_stats=16"]).eval.standing_stats == 16
    with pytest.raises(ConfigError, match="standing_stats=-1"):
        load_config([], ["eval.standing_stats=-1"])
    with pytest.raises(ConfigError, match="not for text-to-image runs"):
        load_config([os.path.join(REPO, "configs", "text2img", "digits_stackgan.yaml")], ["eval.standing_stats=4"])


def test_the_periodic_evaluation_uses_them(tmp_path):
    from types import SimpleNamespace

    from ganscale.metrics.callback import EvalAndPlot

    cfg = load_config([os.path.join(REPO, "configs", "mnist", "dcgan.yaml")],
                      ["model.dcgan.G_ch=8", "model.dcgan.D_ch=8", "data.batch_size=16", "eval.standing_stats=2",
                       "trainer.eval_every=5", "trainer.plot_every=0", "trainer.max_iters=100",
                       "gan.ema.start_iter=0"])
    module = GANModule(cfg, DataInfo("image", (1, 28, 28), 10))
    seen = []

    class Recorder:  # the evaluation: what G did it sample from?
        def evaluate(self, sample_fn):
            sample_fn(4)
            seen.append({int(m.num_batches_tracked) for m in module.sampler.modules() if isinstance(m, nn.BatchNorm2d)})
            return {"fid": 1.0}

    cb = EvalAndPlot(cfg, str(tmp_path))
    cb.evaluation = Recorder()
    module.iteration = 5
    cb.on_train_batch_end(SimpleNamespace(loggers=[]), module, None, None, 0)
    assert seen == [{2}] and cb.latest_metrics == {"iter": 5, "fid": 1.0}
    assert module.sampler is module.G_ema.module  # only for the evaluation
