"""Non-finite guard: a NaN in D's loss is skipped; a persistent NaN rolls back; too many stop."""

from __future__ import annotations

import csv
import json
import math
import os

import lightning as L
import torch

from ganscale.cli import main as cli_main

from opshelpers import FAST, load_ckpt, fast_overrides, train_in_process  # noqa: F401 (fixtures too)


def _params(module, prefix: str) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if k.startswith(prefix)}


class Snapshot(L.Callback):
    """Copies of G and D before and after chosen iterations."""

    def __init__(self, iterations):
        self.iterations, self.before, self.after = set(iterations), {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.iteration in self.iterations:
            self.before[pl_module.iteration] = {**_params(pl_module, "D."), **_params(pl_module, "G.")}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        it = pl_module.iteration - 1
        if it in self.iterations:
            self.after[it] = {**_params(pl_module, "D."), **_params(pl_module, "G."), **_params(pl_module, "G_ema.")}


def test_nan_in_d_loss_at_one_iteration_is_skipped(train_in_process):
    snap = Snapshot([6, 7])
    run = train_in_process("one", "trainer.max_iters=12", "reg.r1_gamma=0", "gan.n_disc=2", "guard.debug_nan_d_loss_at=[7]",
                           callbacks=[snap])
    m = run.module
    assert m.num_skipped == {"D": 2, "G": 0}  # both D steps of iteration 7, nothing else
    d_keys = [k for k in snap.before[7] if k.startswith("D.")]
    g_keys = [k for k in snap.before[7] if k.startswith("G.")]
    assert all(torch.equal(snap.before[7][k], snap.after[7][k]) for k in d_keys)  # D did not step
    assert not all(torch.equal(snap.before[7][k], snap.after[7][k]) for k in g_keys)  # G did
    assert not all(torch.equal(snap.before[6][k], snap.after[6][k]) for k in d_keys)  # D steps normally
    assert all(torch.isfinite(p).all() for p in m.parameters())
    guard = next(cb for cb in run.trainer.callbacks if type(cb).__name__ == "NonFiniteGuard")
    assert guard.num_rollbacks == 0
    with open(os.path.join(run.run_dir, "metrics.csv")) as f:
        last = [r for r in csv.DictReader(f) if r.get("skipped/D")][-1]
    assert float(last["skipped/D"]) == 2 and float(last["skipped/G"]) == 0


def test_persistent_nan_rolls_back_to_the_checkpoint_before_the_streak(train_in_process, tmp_path):
    # NaN in every D step of iterations 12..17; K=3: the streak 12,13,14 rolls back to iter_10, the
    # streak 15,16,17 to iter_15 (written right after the first rollback); then training goes on.
    snap = Snapshot([14])
    run = train_in_process("roll", "trainer.max_iters=25", "reg.r1_gamma=0", "trainer.ckpt_every=5", "checkpoint.keep_last=10",
                           "guard.debug_nan_d_loss_at=[12,13,14,15,16,17]", "guard.max_consecutive_skips=3",
                           "guard.lr_factor=0.5", "guard.max_rollbacks=3", callbacks=[snap])
    assert run.module.iteration == 25
    with open(os.path.join(run.run_dir, "events.jsonl")) as f:
        events = [json.loads(line) for line in f]
    assert [(e["iter"], e["to_iteration"], e["num_rollbacks"]) for e in events] == [(15, 10, 1), (18, 15, 2)]
    # right after the first rollback (end of iteration 14), G, D and G_ema are those of iter_10
    ckpt10 = load_ckpt(tmp_path / "roll" / "checkpoints" / "iter_00000010.ckpt")["state_dict"]
    ckpt15 = load_ckpt(tmp_path / "roll" / "checkpoints" / "iter_00000015.ckpt")["state_dict"]
    for k, v in snap.after[14].items():
        assert torch.equal(v, ckpt10[k]), k
        assert torch.equal(v, ckpt15[k]), k  # iter_15 was written from the rolled-back state
    for opt in run.trainer.optimizers:
        assert math.isclose(opt.param_groups[0]["lr"], run.cfg.optim.G.lr * 0.25)  # G and D share the lr here
    final = load_ckpt(tmp_path / "roll" / "checkpoints" / "iter_00000025.ckpt")
    guard_state = next(v for k, v in final["callbacks"].items() if "NonFiniteGuard" in k)
    assert guard_state == {"num_rollbacks": 2, "lr_scale": 0.25}
    assert all(torch.isfinite(t).all() for t in final["state_dict"].values() if t.is_floating_point())
    with open(os.path.join(run.run_dir, "metrics.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r.get("guard/rollbacks")]
    assert [float(r["guard/rollbacks"]) for r in rows] == [1, 2]


def test_several_iterations_per_step_roll_back_at_the_end_of_the_step(train_in_process):
    # the streaks of the test above, with steps of 5 iterations: 12,13,14 completes inside the step
    # 10..14 (rolled back at its end, to iter_10), 15,16,17 inside 15..19 (at its end, to iter_15)
    run = train_in_process("roll5", "trainer.max_iters=25", "reg.r1_gamma=0", "trainer.ckpt_every=5",
                           "checkpoint.keep_last=10", "trainer.iters_per_step=5",
                           "guard.debug_nan_d_loss_at=[12,13,14,15,16,17]", "guard.max_consecutive_skips=3",
                           "guard.lr_factor=0.5", "guard.max_rollbacks=3")
    assert run.module.iteration == 25
    with open(os.path.join(run.run_dir, "events.jsonl")) as f:
        events = [json.loads(line) for line in f]
    assert [(e["iter"], e["to_iteration"], e["num_rollbacks"]) for e in events] == [(15, 10, 1), (20, 15, 2)]


def test_rollbacks_exhausted_or_nothing_to_roll_back_to_stop_with_a_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GANSCALE_RUN_DIR", raising=False)
    nan_from_6 = "guard.debug_nan_d_loss_at=[" + ",".join(map(str, range(6, 40))) + "]"
    rc = cli_main(["train", *FAST, f"run.root={tmp_path}", "run.name=r", "trainer.max_iters=40", "trainer.ckpt_every=5",
                   "trainer.iters_per_step=1",  # the default job steps 10 at a time: the guard's timing per iteration
                   nan_from_6, "guard.max_consecutive_skips=2", "guard.max_rollbacks=1"])
    err = capsys.readouterr().err
    assert rc == 3
    assert "training diverged" in err and "after 1 rollback(s) (guard.max_rollbacks=1)" in err
    assert "iteration 10" in err and "Traceback" not in err

    monkeypatch.delenv("GANSCALE_RUN_DIR", raising=False)
    rc = cli_main(["train", *FAST, f"run.root={tmp_path}", "run.name=n", "trainer.max_iters=10", "trainer.ckpt_every=5",
                   "trainer.iters_per_step=1",
                   "guard.debug_nan_d_loss_at=[0,1,2]", "guard.max_consecutive_skips=2"])
    err = capsys.readouterr().err
    assert rc == 3 and "no complete checkpoint from before iteration 1" in err
