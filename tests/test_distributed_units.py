"""Distributed pieces that run in one process: config checks, strategy selection, DeepSpeed config,
bucketing, per-player loss scalers, fp32 EMA of half-precision weights, run directory agreement,
and the missing-gradient semantics."""

from __future__ import annotations

import copy
import os

import lightning as L
import pytest
import torch
from torch.optim.swa_utils import AveragedModel

from conftest import free_port
from ganscale.config import load_config
from ganscale.distributed import trainer_kwargs
from ganscale.distributed.collectives import (
    _buckets,
    all_agree,
    average_gradients_,
    differentiable_mean,
    differentiable_mean_all,
)
from ganscale.distributed.ddp import PlayerDDPStrategy, replica_buffers
from ganscale.distributed.players import active_player, skip_player_step
from ganscale.distributed.precision import PlayerMixedPrecision
from ganscale.errors import ConfigError, UserError
from ganscale.train.ema import EMA


def problems(*overrides: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_config([], list(overrides))
    return str(e.value)


def test_config_errors_name_the_fix():
    msg = problems("strategy.name=deepspeed", "strategy.zero_stage=3")
    assert "ZeRO-3 partitions the parameters" in msg and "zero_stage=2" in msg
    assert "choose one of: auto, single, ddp, deepspeed" in problems("strategy.name=fsdp")
    assert "use strategy.name=ddp or deepspeed" in problems("strategy.name=single", "trainer.devices=2")
    assert "nccl needs GPUs" in problems("strategy.process_group_backend=nccl", "trainer.accelerator=cpu")
    assert "missing_grads=skip is impossible" in problems("strategy.name=deepspeed", "strategy.missing_grads=skip")
    assert "choose 1 or 2" in problems("strategy.name=deepspeed", "strategy.zero_stage=5")


def test_trainer_kwargs_pick_strategy_and_precision():
    kw = trainer_kwargs(load_config([], []))
    assert kw == {"strategy": "auto", "precision": "32-true", "plugins": []}
    kw = trainer_kwargs(load_config([], ["trainer.devices=2", "trainer.precision=bf16-mixed"]))
    assert isinstance(kw["strategy"], PlayerDDPStrategy) and "precision" not in kw
    (plugin,) = kw["plugins"]
    assert isinstance(plugin, PlayerMixedPrecision) and plugin.precision == "bf16-mixed" and plugin.scaler is None
    pytest.importorskip("deepspeed")
    from ganscale.distributed.deepspeed import TwoEngineDeepSpeedStrategy

    kw = trainer_kwargs(load_config([], ["strategy.name=deepspeed", "trainer.precision=bf16-mixed"]))
    assert isinstance(kw["strategy"], TwoEngineDeepSpeedStrategy)
    assert kw["precision"] == "32-true", "the engines run bf16 themselves; Lightning must not autocast too"


def test_deepspeed_config_per_player():
    pytest.importorskip("deepspeed")
    from ganscale.distributed.deepspeed import deepspeed_config

    cfg = load_config([], ["strategy.name=deepspeed", "strategy.zero_stage=1"]).strategy
    c = deepspeed_config(cfg, "bf16-mixed", micro_batch=32, num_params=1000)
    assert c["zero_optimization"]["stage"] == 1 and c["train_micro_batch_size_per_gpu"] == 32
    assert c["zero_optimization"]["reduce_bucket_size"] == 1024, "buckets no bigger than the player (x512)"
    assert c["bf16"] == {"enabled": True, "check_grad_overflow": True}, "bf16 steps must skip non-finite grads"
    big = deepspeed_config(cfg, "16-mixed", 32, 10**9)
    assert big["zero_optimization"]["reduce_bucket_size"] == cfg.zero_bucket_size
    assert big["fp16"]["loss_scale"] == 0, "dynamic loss scale, one per engine (player)"
    cfg.zero_stage = 3
    with pytest.raises(UserError, match="ZeRO-3"):
        deepspeed_config(cfg, "32-true", 32, 10)


def test_buckets_split_by_dtype_device_and_size():
    ts = [torch.zeros(10), torch.zeros(10), torch.zeros(3, dtype=torch.float64), torch.zeros(30), torch.zeros(1)]
    sizes = [[t.numel() for t in b] for b in _buckets(ts, cap_bytes=80)]
    assert sizes == [[10, 10], [3], [30], [1]]  # a tensor bigger than the cap gets its own bucket


def test_collectives_are_identities_in_one_process():
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    average_gradients_([p])
    assert torch.equal(p.grad, torch.full((2,), 3.0))
    x = torch.ones(2, requires_grad=True)
    assert differentiable_mean(x) is x and differentiable_mean_all([x, None]) == [x, None]
    assert all_agree(True) and not all_agree(False)


class _Strategy:
    def __init__(self, precision):
        self.precision_plugin = precision
        self.active_player = None


def test_each_player_has_its_own_loss_scaler():
    prec = PlayerMixedPrecision("16-mixed", "cpu", initial_scale_power=10)
    strategy = _Strategy(prec)
    with pytest.raises(RuntimeError, match="outside a player phase"):
        prec.scaler
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with active_player(strategy, "D"):
        assert prec.scaler is prec.scalers["D"] and strategy.active_player == "D"
        skip_player_step(strategy, opt)  # a non-finite D step backs off D's scale only
    assert strategy.active_player is None and prec.active_player is None
    with active_player(strategy, "G"):  # any player of the game gets its own scaler at its first step
        assert prec.scaler is prec.scalers["G"]
    assert prec.scalers["D"].get_scale() == 2.0 ** 9 and prec.scalers["G"].get_scale() == 2.0 ** 10
    state = prec.state_dict()
    fresh = PlayerMixedPrecision("16-mixed", "cpu")
    fresh.load_state_dict(state)
    assert fresh.scalers["D"].get_scale() == 2.0 ** 9 and fresh.scalers["G"].get_scale() == 2.0 ** 10
    assert PlayerMixedPrecision("bf16-mixed", "cpu").scalers == {}


def test_ema_of_half_precision_weights_stays_fp32():
    G = torch.nn.Linear(3, 3)
    avg = AveragedModel(G, use_buffers=True)
    ema = EMA(avg, G, decay=0.5)
    G.to(torch.bfloat16)  # a DeepSpeed bf16 engine keeps G's weights in bf16
    ema.update()  # the first update copies
    start = copy.deepcopy(avg.module.weight.detach())
    with torch.no_grad():
        G.weight.add_(1.0)
    ema.update()
    assert avg.module.weight.dtype == torch.float32
    torch.testing.assert_close(avg.module.weight, 0.5 * start + 0.5 * G.weight.float())


def test_replica_buffers_are_batchnorm_statistics_not_spectral_norm_vectors():
    net = torch.nn.Sequential(torch.nn.utils.parametrizations.spectral_norm(torch.nn.Linear(2, 4)),
                              torch.nn.BatchNorm1d(4))
    names = {id(b) for b in replica_buffers(net)}
    assert names == {id(net[1].running_mean), id(net[1].running_var)}


def test_launched_processes_agree_on_the_run_directory(monkeypatch):
    from ganscale.train import run
    from ganscale.utils.ranks import LAUNCHER_RANK_VARS, launched_rank_zero

    cfg = load_config([], ["config_name=ring", "run.root=/r"])
    for k in ("GANSCALE_RUN_DIR", "SLURM_JOB_ID", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    assert run.resolve_run_dir(cfg) == "/r/ring-jobabc"
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert run.resolve_run_dir(cfg) == "/r/ring-job77"
    for k in LAUNCHER_RANK_VARS:
        monkeypatch.delenv(k, raising=False)
    assert launched_rank_zero()
    for k in ("RANK", "GROUP_RANK", "SLURM_PROCID"):  # torchrun worker / second node / srun task
        monkeypatch.setenv(k, "1")
        assert not launched_rank_zero()
        monkeypatch.setenv(k, "0")


def _one_iteration_with_r1(missing: str) -> dict:
    from ganscale.data.toy import ToyDataModule
    from ganscale.train.module import GANModule

    cfg = load_config([], ["reg.r1_gamma=1.0", "data.batch_size=16", "trainer.max_iters=1",
                           f"strategy.missing_grads={missing}", "model.mlp.D.width=16", "model.mlp.G.width=16"])
    L.seed_everything(0, verbose=False)
    dm = ToyDataModule(cfg)
    module = GANModule(cfg, dm.info)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        **trainer_kwargs(cfg))
    trainer.fit(module, datamodule=dm)
    return {k: v.detach().clone() for k, v in module.D.state_dict().items()}


def test_missing_gradients_are_skipped_or_zero_as_configured():
    """D's output bias gets no gradient from R1: `skip` leaves it alone in the R1 step (torch's
    rule), `zero` steps it with a zero gradient (DeepSpeed ZeRO's rule)."""
    skip, zero = _one_iteration_with_r1("skip"), _one_iteration_with_r1("zero")
    changed = sorted(k for k in skip if not torch.equal(skip[k], zero[k]))
    assert changed == ["head.bias"]


@pytest.mark.parametrize("caller_owns", [False, True])
def test_a_run_closes_the_process_group_it_created_and_only_that(tmp_path, caller_owns):
    """Every rank of a finished run waits for the others and destroys its group before exiting
    (a rank leaving with a live group could abort in its teardown and fail the Slurm job); a group
    the caller set up (a harness running several trainings) stays open."""
    import torch.distributed as dist

    from ganscale.train.run import main

    saved = dict(os.environ)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK"):
        os.environ.pop(k, None)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    if caller_owns:
        dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        cfg = load_config([], ["strategy.name=ddp", "trainer.devices=1", "trainer.max_iters=3", "trainer.log_every=1",
                               "trainer.eval_every=0", "trainer.plot_every=0", "trainer.progress_bar=false",
                               "wandb.mode=disabled", f"run.root={tmp_path}", "run.name=r"])
        before = {k: os.environ.get(k) for k in ("WORLD_SIZE", "LOCAL_RANK", "NODE_RANK", "RANK")}
        run = main(cfg)
        assert run.module.iteration == 3
        assert dist.is_initialized() == caller_owns
        # Lightning's rendezvous variables do not outlive the run (the process's next run would
        # take itself for a launched child)
        assert {k: os.environ.get(k) for k in before} == before
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        os.environ.clear()
        os.environ.update(saved)
