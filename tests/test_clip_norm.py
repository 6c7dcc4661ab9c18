"""optim.<player>.clip_norm: each player's gradients clipped to a global L2 norm before its step,
by the same rule as torch.nn.utils.clip_grad_norm_ (and DeepSpeed's gradient_clipping); the
distributed cases (tests/dist_worker.py, case "clip") check N ranks against one process."""

import copy

import lightning as L
import pytest
import torch

from ganscale.config.load import load_config
from ganscale.data.toy import ToyDataModule
from ganscale.distributed.players import clip_gradients
from ganscale.errors import ConfigError
from ganscale.train.module import GANModule


def test_clip_gradients_is_torchs_rule():
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(7))]
    b = copy.deepcopy(a)
    for p in a + b:
        p.grad = torch.ones_like(p) * 3.0
    norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in a]))
    clip_gradients(a, norm, 2.0)
    torch.nn.utils.clip_grad_norm_(b, 2.0)
    for p, q in zip(a, b):
        torch.testing.assert_close(p.grad, q.grad)
    before = [p.grad.clone() for p in a]
    clip_gradients(a, torch.tensor(1.5), 2.0)  # below the bound: untouched
    assert all(torch.equal(p.grad, q) for p, q in zip(a, before))


def _one_iteration(*overrides):
    cfg = load_config([], ["trainer.max_iters=1", "data.batch_size=32", "gan.n_disc=1", "reg.r1_gamma=0",
                           "optim.G.name=sgd", "optim.D.name=sgd", "optim.G.lr=1.0", "optim.D.lr=1.0", *overrides])
    L.seed_everything(cfg.seed, verbose=False)
    dm = ToyDataModule(cfg)
    module = GANModule(cfg, dm.info)
    before = {k: v.detach().clone() for k, v in module.state_dict().items()}
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    return module, before


def _step_norm(module, before, net: str) -> float:
    moved = [(p.detach() - before[f"{net}.{n}"]).flatten() for n, p in getattr(module, net).named_parameters()]
    return float(torch.linalg.vector_norm(torch.cat(moved)))


def test_each_player_steps_by_at_most_its_clip_norm():
    # plain SGD with lr 1: a step moves the weights by exactly the (clipped) gradient
    free, before = _one_iteration()
    assert _step_norm(free, before, "D") > 0.05 and _step_norm(free, before, "G") > 0.02
    clipped, before = _one_iteration("optim.D.clip_norm=0.05", "optim.G.clip_norm=0.02")
    assert _step_norm(clipped, before, "D") == pytest.approx(0.05, rel=1e-4)
    assert _step_norm(clipped, before, "G") == pytest.approx(0.02, rel=1e-4)
    # the logged norm is the one before clipping
    assert float(clipped.stats["grad_norm/G"]) > 0.02


def test_clip_norm_problems_are_named():
    with pytest.raises(ConfigError) as e:
        load_config([], ["optim.G.clip_norm=-1", "optim.D.clip_norm=1", "unroll.steps=2"])
    text = str(e.value)
    assert "clip_norm=-1.0 must be >= 0" in text
    assert "look-ahead replays D's optimizer rule without clipping" in text
