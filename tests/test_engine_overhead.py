"""The engine's per-step work, made cheaper without changing its results (docs/overhead.md):
EMA over cached lists (equal to AveragedModel's update), requires_grad switched only when the
player changes, backward/step without Lightning's wrappers where they add nothing (equal to the
wrapped path), and the finite guard's flag kept on the device with a fused Adam (masked step)."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ganscale.config import load_config
from ganscale.data.toy import ToyDataModule
from ganscale.distributed import players
from ganscale.train import optim
from ganscale.train.ema import EMA
from ganscale.train.module import GANModule


def _net():
    return nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def test_ema_equals_averaged_models_update_bit_for_bit():
    torch.manual_seed(0)
    G = _net()
    reference = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    ours = AveragedModel(G, use_buffers=True)
    ema = EMA(ours, G, decay=0.9)
    start_iter = 3
    for it in range(8):
        with torch.no_grad():
            for p in G.parameters():
                p.add_(torch.randn_like(p))
        G(torch.randn(16, 3))  # moves BatchNorm's running statistics and its integer counter
        if it < start_iter:
            reference.n_averaged.zero_()
        reference.update_parameters(G)
        ema.update(copy=it < start_iter)
        for (k, a), b in zip(reference.state_dict().items(), ours.state_dict().values()):
            assert torch.equal(a, b), (it, k)
    assert int(ours.n_averaged) == 8 - start_iter + 1


def test_ema_continues_averaging_after_a_reload():
    G = _net()
    avg = AveragedModel(G, use_buffers=True)
    ema = EMA(avg, G, decay=0.5)
    ema.update()
    state = copy.deepcopy(avg.state_dict())
    fresh_avg = AveragedModel(_net(), use_buffers=True)
    fresh_avg.load_state_dict(state)
    fresh = EMA(fresh_avg, G, decay=0.5)
    with torch.no_grad():
        G[0].weight.add_(2.0)
    fresh.update()  # n_averaged > 0 in the checkpoint: this update averages, it does not copy
    torch.testing.assert_close(fresh_avg.module[0].weight, state["module.0.weight"] + 1.0)


def _fit(overrides, iters=4, callbacks=(), module_cls=GANModule):
    cfg = load_config([], [f"trainer.max_iters={iters}", "data.batch_size=16", "gan.n_disc=2", "reg.r1_gamma=0.1",
                           *overrides])
    L.seed_everything(cfg.seed, verbose=False)
    dm = ToyDataModule(cfg)
    module = module_cls(cfg, dm.info)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=iters, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=list(callbacks))
    trainer.fit(module, datamodule=dm)
    return module, trainer


class BackwardHook(L.Callback):
    """A callback that hooks into backward: the engine must then go through Lightning's path."""

    def __init__(self):
        self.calls = 0

    def on_after_backward(self, trainer, pl_module):
        self.calls += 1


def test_direct_backward_and_step_equal_lightnings_path():
    direct, t_direct = _fit([])
    assert direct.direct_steps
    hook = BackwardHook()
    wrapped, t_wrapped = _fit([], callbacks=[hook])
    assert not wrapped.direct_steps and hook.calls == 4 * (2 + 1 + 1)  # D x2, R1, G per iteration
    assert t_direct.global_step == t_wrapped.global_step == 4 * 4  # Lightning still counts every step
    for (k, a), b in zip(direct.state_dict().items(), wrapped.state_dict().values()):
        assert torch.equal(a, b), k


def test_requires_grad_switches_only_when_the_player_changes():
    cfg = load_config([], ["data.batch_size=8"])
    m = GANModule(cfg, ToyDataModule(cfg).info)
    m._train("D")
    assert all(p.requires_grad for p in m.D.parameters()) and not any(p.requires_grad for p in m.G.parameters())
    first = next(m.D.parameters())
    first.requires_grad_(False)
    m._train("D")  # the same player: nothing walks the parameters again
    assert not first.requires_grad
    m._train("D", force=True)
    assert first.requires_grad
    m._train(None)
    assert not any(p.requires_grad for p in m.parameters())


def test_grad_norm_is_the_norm_of_all_gradients():
    ps = [nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(5)), nn.Parameter(torch.randn(2))]
    for p in ps[:2]:
        p.grad = torch.randn_like(p)
    want = torch.cat([p.grad.flatten() for p in ps[:2]]).norm()
    torch.testing.assert_close(players.grad_norm(ps, "cpu"), want)


class NaNAt1(GANModule):
    """D's output is NaN in iteration 1 (both players' losses go through it)."""

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.D.register_forward_hook(lambda net, args, out: out * float("nan") if self.iteration == 1 else out)
        self.returned, self.D_before, self.D_after = [], None, None

    def run_phase(self, phase, sub=0):
        if self.iteration == 1 and phase.name == "D_main" and sub == 0:
            self.D_before = copy.deepcopy(self.D.state_dict())
        out = super().run_phase(phase, sub)
        if self.iteration == 1 and phase.name == "G_main":
            self.D_after = copy.deepcopy(self.D.state_dict())
        self.returned.append(out)
        return out


@pytest.mark.parametrize("fused", [False, True])
def test_non_finite_steps_are_skipped_with_the_flag_on_the_host_or_on_the_device(monkeypatch, fused):
    # fused Adam (the CUDA default) takes the guard's flag as found_inf: no host read per step.
    # torch's CPU fused Adam stands in for CUDA's here.
    monkeypatch.setattr(optim, "use_fused", lambda params, cfg: fused)
    m, _ = _fit(["gan.n_disc=2"], iters=3, module_cls=NaNAt1)
    assert all(isinstance(r, torch.Tensor) == fused for r in m.returned if r is not False)
    assert m.num_skipped == {"G": 1, "D": 3}  # both D steps and R1 of iteration 1, and G's step
    for k, v in m.D_before.items():
        assert torch.equal(v, m.D_after[k]), k  # D did not move in iteration 1
    assert all(torch.isfinite(p).all() for p in m.parameters())
    opt_d = m.optimizer_of("D").optimizer
    # the skipped steps left Adam's step counts alone: 2 clean iterations of 3 D steps (R1 leaves
    # the last bias without a gradient, so it counts 2 per iteration)
    assert {float(s["step"]) for s in opt_d.state.values()} == {2 * 3.0, 2 * 2.0}


@pytest.mark.parametrize("loss, gnorm", [(0.7, 2.0), (float("nan"), 1.0), (0.7, float("inf")),
                                         (float("-inf"), 0.0), (1e38, 1e38)])
def test_the_finite_check_read_on_the_host_is_the_device_flags(loss, gnorm):
    loss_t, gnorm_t = torch.tensor(loss), torch.tensor(gnorm)
    flag = bool((torch.isfinite(loss_t) & torch.isfinite(gnorm_t)).item())  # the device path's flag
    assert players.finite_on_every_rank(loss_t, gnorm_t, torch.device("cpu")) is flag
    assert players.finite_on_every_rank(loss_t.bfloat16(), gnorm_t, torch.device("cpu")) is flag
