"""trainer.iters_per_step: up to K ganscale iterations per Lightning training step give the
results of one iteration per step, bit for bit: the same weights, checkpoints and logged rows, a
resume from any iteration, steps cut where an op acts and at max_iters."""

from __future__ import annotations

import csv
import os

import pytest
import torch

from ganscale.config import load_config
from ganscale.data.base import IterationGroups, iteration_group
from ganscale.errors import UserError
from ganscale.train import run as run_mod

RING = os.path.join(os.path.dirname(__file__), "..", "configs", "toy", "ring.yaml")
SHORT = ["data.batch_size=64", "trainer.log_every=10", "trainer.plot_every=0", "trainer.eval_every=0",
         "trainer.ckpt_every=20", "trainer.progress_bar=false", "wandb.mode=disabled", "reg.r1_interval=3"]


def _train(root, name: str, *overrides: str):
    os.environ.pop(run_mod.RUN_DIR_ENV, None)
    cfg = load_config([RING], [*SHORT, f"run.root={root}", f"run.name={name}", *overrides])
    return run_mod.main(cfg)


def _weights(run) -> dict:
    return {k: v.detach().clone() for k, v in run.module.state_dict().items()}


def _rows(run) -> list[dict]:
    with open(os.path.join(run.run_dir, "metrics.csv")) as f:
        return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in csv.DictReader(f)]


def test_groups_end_every_k_iterations_and_where_an_op_acts():
    t = load_config([], ["trainer.iters_per_step=5", "trainer.log_every=3", "trainer.plot_every=0",
                         "trainer.eval_every=0", "trainer.ckpt_every=8", "trainer.max_iters=14"]).trainer
    assert [n for n in range(1, 15) if t.step_ends(n)] == [3, 5, 6, 8, 9, 10, 12, 14]
    groups = list(IterationGroups(range(1, 15), start=0, ends=t.step_ends))
    assert [len(g["iterations"]) for g in groups] == [3, 2, 1, 2, 1, 1, 2, 2]
    # resumed after 4 iterations: cut where the uninterrupted run cuts
    resumed = list(IterationGroups(range(5, 15), start=4, ends=t.step_ends))
    assert [len(g["iterations"]) for g in resumed] == [1, 1, 2, 1, 1, 2, 2]
    assert iteration_group(groups[0]) == [1, 2, 3]
    assert iteration_group({"x": torch.zeros(2)}) is None  # one iteration's batch


def test_k_iterations_per_step_equal_one_per_step_bit_for_bit(tmp_path):
    one = _train(tmp_path, "k1", "trainer.max_iters=47", "trainer.iters_per_step=1")
    five = _train(tmp_path, "k5", "trainer.max_iters=47", "trainer.iters_per_step=5")
    assert one.module.iteration == five.module.iteration == 47  # the last step stops at max_iters
    a, b = _weights(one), _weights(five)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(one) == _rows(five)  # the same rows at the same iterations (losses, lrs, skips)
    for run in (one, five):
        names = sorted(f for f in os.listdir(os.path.join(run.run_dir, "checkpoints")) if f.endswith(".ckpt"))
        assert names == ["iter_00000020.ckpt", "iter_00000040.ckpt", "iter_00000047.ckpt"]


def test_resume_at_an_iteration_that_is_not_a_multiple_of_k(tmp_path):
    # a checkpoint at 21 (written by a K=1 run), resumed with K=5: the first step runs 21..24 and
    # every later one starts at a multiple of 5, as the cadences expect (constant learning rates:
    # the ring's schedule depends on max_iters)
    const = ["optim.G.schedule=constant", "optim.D.schedule=constant"]
    reference = _train(tmp_path, "ref", "trainer.max_iters=40", "trainer.iters_per_step=1", *const)
    _train(tmp_path, "cut", "trainer.max_iters=21", "trainer.iters_per_step=1", "trainer.ckpt_every=0", *const)
    resumed = _train(tmp_path, "cut", "trainer.max_iters=40", "trainer.iters_per_step=5", *const)
    assert resumed.module.iteration == 40
    a, b = _weights(reference), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    names = sorted(f for f in os.listdir(os.path.join(resumed.run_dir, "checkpoints")) if f.endswith(".ckpt"))
    assert names == ["iter_00000021.ckpt", "iter_00000040.ckpt"]
    # the rows at 30 and 40 (log_every=10): a step ending at 26, 31, ... would have logged neither 30 nor its values
    after = [r for r in _rows(resumed) if r["iter"] and float(r["iter"]) > 21]
    assert after == [r for r in _rows(reference) if r["iter"] and float(r["iter"]) > 21]
    assert [float(r["iter"]) for r in after] == [30, 40]


def test_cadences_that_are_not_multiples_of_k_keep_their_iterations(tmp_path):
    # K=4 with log_every=6 and ckpt_every=10: steps end at 4, 6, 8, 10, 12, 16, 18, 20, ...
    one = _train(tmp_path, "k1", "trainer.max_iters=23", "trainer.log_every=6", "trainer.ckpt_every=10",
                 "trainer.iters_per_step=1")
    four = _train(tmp_path, "k4", "trainer.max_iters=23", "trainer.log_every=6", "trainer.ckpt_every=10",
                  "trainer.iters_per_step=4")
    assert _rows(one) == _rows(four)
    assert [float(r["iter"]) for r in _rows(four) if r["iter"]] == [6, 12, 18, 23]
    a, b = _weights(one), _weights(four)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for run in (one, four):
        names = sorted(f for f in os.listdir(os.path.join(run.run_dir, "checkpoints")) if f.endswith(".ckpt"))
        assert names == ["iter_00000010.ckpt", "iter_00000020.ckpt", "iter_00000023.ckpt"]
    with pytest.raises(UserError, match="iters_per_step=0 must be >= 1"):
        load_config([], ["trainer.iters_per_step=0"])
