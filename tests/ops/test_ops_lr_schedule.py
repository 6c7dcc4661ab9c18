"""Learning-rate schedules: the shape of lr_at, config errors, exact resume, the guard's scale."""

from __future__ import annotations

import csv
import warnings
import math
import os

import lightning as L
import pytest

from ganscale.config import load_config
from ganscale.errors import ConfigError
from ganscale.train.config import OptimizerConfig
from ganscale.train.optim import lr_at

from opshelpers import load_ckpt, fast_overrides, train_in_process  # noqa: F401 (fixtures too)
from test_ops_checkpoint import _assert_same_training_state

SCHEDULE = ["optim.G.schedule=linear", "optim.D.schedule=cosine", "optim.G.decay_start=0.25",
            "optim.D.decay_start=0.5", "optim.D.final_scale=0.1"]


def test_lr_at_shapes():
    const = OptimizerConfig(lr=1e-3)
    assert [lr_at(const, i, 100) for i in (0, 50, 99)] == [1e-3] * 3
    lin = OptimizerConfig(lr=1e-3, schedule="linear", decay_start=0.5)
    assert lr_at(lin, 0, 100) == lr_at(lin, 50, 100) == 1e-3  # flat until decay_start
    assert math.isclose(lr_at(lin, 75, 100), 0.5e-3)  # halfway through the decay
    assert math.isclose(lr_at(lin, 100, 100), 0.0, abs_tol=1e-12)
    cos = OptimizerConfig(lr=1e-3, schedule="cosine", final_scale=0.1)
    assert math.isclose(lr_at(cos, 50, 100), 1e-3 * (0.1 + 0.9 * 0.5))  # cos(pi/2) = 0: the midpoint
    assert math.isclose(lr_at(cos, 100, 100), 1e-4)
    assert lr_at(cos, 25, 100) > 1e-3 * (1 - 0.9 * 0.25)  # cosine stays above the line early on
    values = [lr_at(cos, i, 100) for i in range(101)]
    assert values == sorted(values, reverse=True)


def test_bad_schedule_settings_are_one_error():
    with pytest.raises(ConfigError) as e:
        load_config([], ["optim.G.schedule=step", "optim.D.decay_start=1.0", "optim.D.final_scale=2"])
    msg = str(e.value)
    assert "schedule='step' unknown" in msg and "constant, linear, cosine" in msg
    assert "decay_start=1.0" in msg and "final_scale=2" in msg


class StopAt(L.Callback):
    """Ends fit after `n` iterations, as a preemption would (max_iters, and so the schedule, unchanged)."""

    def __init__(self, n: int):
        self.n = n

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.iteration == self.n:
            trainer.should_stop = True


def test_scheduled_run_stopped_and_resumed_equals_uninterrupted(train_in_process, tmp_path):
    common = [*SCHEDULE, "trainer.max_iters=24", "trainer.ckpt_every=6"]
    full = train_in_process("full", *common)
    train_in_process("split", *common, callbacks=[StopAt(12)])
    resumed = train_in_process("split", *common)
    assert resumed.ckpt_path.endswith("iter_00000012.ckpt")  # it really resumed
    a = load_ckpt(tmp_path / "full" / "checkpoints" / "iter_00000024.ckpt")
    b = load_ckpt(tmp_path / "split" / "checkpoints" / "iter_00000024.ckpt")
    _assert_same_training_state(a, b)  # param_groups (the lrs) included
    cfg = full.cfg
    # the last iteration (23) stepped with lr_at(23): G linear from iteration 6, D cosine from 12
    lr_G, lr_D = (g["param_groups"][0]["lr"] for g in a["optimizer_states"])
    assert math.isclose(lr_G, cfg.optim.G.lr * (1 - 17 / 18))
    assert math.isclose(lr_D, lr_at(cfg.optim.D, 23, 24)) and lr_D < cfg.optim.D.lr
    with open(os.path.join(full.run_dir, "metrics.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r.get("lr/G")]
    assert rows and float(rows[0]["lr/G"]) == pytest.approx(cfg.optim.G.lr)  # logged, flat at first


def test_guard_rollback_scales_a_scheduled_lr(train_in_process):
    run = train_in_process("roll", *SCHEDULE, "trainer.max_iters=25", "reg.r1_gamma=0", "trainer.ckpt_every=5",
                           "checkpoint.keep_last=10", "guard.debug_nan_d_loss_at=[12,13,14]",
                           "guard.max_consecutive_skips=3", "guard.lr_factor=0.5")
    assert run.module.lr_scale == 0.5
    lr_G, lr_D = (opt.param_groups[0]["lr"] for opt in run.trainer.optimizers)
    assert math.isclose(lr_G, 0.5 * lr_at(run.cfg.optim.G, 24, 25))  # the schedule, times the guard's scale
    assert math.isclose(lr_D, 0.5 * lr_at(run.cfg.optim.D, 24, 25))


def test_resume_with_other_max_iters_warns_about_the_schedule(train_in_process):
    train_in_process("len", *SCHEDULE, "trainer.max_iters=12", "trainer.ckpt_every=12")
    with pytest.warns(UserWarning) as caught:
        run = train_in_process("len", *SCHEDULE, "trainer.max_iters=16", "trainer.ckpt_every=12")
    assert run.ckpt_path.endswith("iter_00000012.ckpt")
    msgs = [str(w.message) for w in caught if "max_iters" in str(w.message)]
    assert len(msgs) == 1 and "\n" not in msgs[0], msgs
    cfg = run.cfg
    assert msgs[0].startswith("resuming with trainer.max_iters=16 from a checkpoint trained with trainer.max_iters=12")
    assert (f"optim.G.schedule=linear lr at iteration 12: {lr_at(cfg.optim.G, 12, 16):.3g} "
            f"(was {lr_at(cfg.optim.G, 12, 12):.3g})") in msgs[0]
    assert "optim.D.schedule=cosine" in msgs[0]


def test_schedule_change_message_only_for_length_tied_schedules():
    from ganscale.config import to_dict
    from ganscale.train.resume import schedule_change_message

    flat = load_config([], ["optim.G.schedule=constant", "optim.D.schedule=constant", "trainer.max_iters=8"])
    stored = to_dict(load_config([], ["optim.G.schedule=linear", "optim.D.schedule=linear", "trainer.max_iters=6"]))
    assert schedule_change_message(stored, flat, 6) is None  # constant lrs do not depend on max_iters
    decayed = load_config([], [*SCHEDULE, "trainer.max_iters=6"])
    assert schedule_change_message(stored, decayed, 6) is None  # same length
    assert schedule_change_message({}, decayed, 6) is None  # a checkpoint without a stored config
    msg = schedule_change_message(stored, load_config([], ["optim.G.schedule=linear", "optim.D.schedule=constant",
                                                           "trainer.max_iters=8"]), 6)
    assert "trainer.max_iters=8" in msg and "max_iters=6" in msg and "optim.G.schedule=linear" in msg
    assert "optim.D" not in msg


def test_resume_applies_the_configs_optimizer_settings_not_the_checkpoints(train_in_process):
    """Restoring an optimizer restores its param groups' settings too; the config must win (a
    changed optim.D.weight_decay was silently ignored by a run started from another's checkpoint)."""
    train_in_process("wd", "trainer.max_iters=4", "trainer.ckpt_every=4")
    with pytest.warns(UserWarning) as caught:
        run = train_in_process("wd", "trainer.max_iters=6", "trainer.ckpt_every=6", "optim.D.weight_decay=0.01",
                               "optim.G.betas=[0.1,0.9]")
    assert run.ckpt_path.endswith("iter_00000004.ckpt")
    opt_G, opt_D = (run.module.optimizer_of(p).optimizer for p in ("G", "D"))
    assert all(g["weight_decay"] == 0.01 for g in opt_D.param_groups)
    assert all(tuple(g["betas"]) == (0.1, 0.9) for g in opt_G.param_groups)
    assert all(g["weight_decay"] == 0.0 for g in opt_G.param_groups)
    msgs = sorted(str(w.message) for w in caught if "differs from the checkpoint's optimizer" in str(w.message))
    assert len(msgs) == 2, msgs
    assert "optim.D" in msgs[0] and "weight_decay: 0.0 -> 0.01" in msgs[0]
    assert "optim.G" in msgs[1] and "-> (0.1, 0.9)" in msgs[1] and "weight_decay" not in msgs[1]
    # an unchanged resume says nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message="(?!optim)")  # only ours turns into an error
        train_in_process("wd", "trainer.max_iters=8", "trainer.ckpt_every=8", "optim.D.weight_decay=0.01",
                         "optim.G.betas=[0.1,0.9]")
