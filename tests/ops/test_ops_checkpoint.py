"""Full-state checkpoints: exact resume, atomic writes and markers, keep-last-K + best."""

from __future__ import annotations

import csv
import json
import os

import lightning as L
import pytest
import torch

from ganscale.ops.checkpoint import store
from ganscale.ops.checkpoint.io import AtomicCheckpointIO

from opshelpers import load_ckpt, fast_overrides, train_in_process  # noqa: F401 (fixtures too)


class GlobalRngPerturbation(L.Callback):
    """Stands in for dropout/augmentation: D's weights get noise from the *global* generator
    before every iteration, so the resumed run only matches if the RNG states were restored."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        with torch.no_grad():
            for p in pl_module.D.parameters():
                p.add_(1e-3 * torch.randn_like(p))


def _assert_same_training_state(a: dict, b: dict) -> None:
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), f"{k} differs"
    assert len(a["optimizer_states"]) == len(b["optimizer_states"]) == 2
    for sa, sb in zip(a["optimizer_states"], b["optimizer_states"]):
        assert sa["param_groups"] == sb["param_groups"]
        for i in sa["state"]:
            for name, t in sa["state"][i].items():
                assert torch.equal(t, sb["state"][i][name]), f"optimizer state {i}/{name} differs"


def test_2n_equals_n_stop_resume_n_bit_exact(train_in_process, tmp_path):
    n = 12
    common = ["trainer.ckpt_every=6", "gan.n_disc=2"]
    train_in_process("full", *common, f"trainer.max_iters={2 * n}", callbacks=[GlobalRngPerturbation()])
    train_in_process("split", *common, f"trainer.max_iters={n}", callbacks=[GlobalRngPerturbation()])
    resumed = train_in_process("split", *common, f"trainer.max_iters={2 * n}", callbacks=[GlobalRngPerturbation()])
    assert resumed.ckpt_path.endswith(f"iter_{n:08d}.ckpt")  # it really resumed
    assert resumed.module.iteration == 2 * n

    a = load_ckpt(tmp_path / "full" / "checkpoints" / f"iter_{2 * n:08d}.ckpt")
    b = load_ckpt(tmp_path / "split" / "checkpoints" / f"iter_{2 * n:08d}.ckpt")
    assert any(k.startswith("G_ema.") for k in a["state_dict"])  # G, D and G_ema are all in there
    assert any(k.startswith("G.") for k in a["state_dict"]) and any(k.startswith("D.") for k in a["state_dict"])
    _assert_same_training_state(a, b)
    assert a["ganscale"]["iteration"] == b["ganscale"]["iteration"] == 2 * n
    assert a["ToyDataModule"] == b["ToyDataModule"] == {"batches_consumed": 2 * n}  # stream position
    rng_a, rng_b = a["ganscale_ops"]["rng"], b["ganscale_ops"]["rng"]
    assert len(rng_a) == 1 and torch.equal(rng_a[0]["torch"], rng_b[0]["torch"])
    assert rng_a[0]["python"] == rng_b[0]["python"]


def test_resume_without_rng_restore_would_differ(train_in_process, tmp_path, monkeypatch):
    """The perturbation above really depends on the global RNG: skip the restore and the
    resumed run diverges (so the bit-exact test above would catch a broken restore)."""
    from ganscale.ops.checkpoint import rng

    common = ["trainer.ckpt_every=4", "trainer.log_every=0"]
    train_in_process("full", *common, "trainer.max_iters=8", callbacks=[GlobalRngPerturbation()])
    train_in_process("split", *common, "trainer.max_iters=4", callbacks=[GlobalRngPerturbation()])
    monkeypatch.setattr(rng, "restore", lambda state: None)
    train_in_process("split", *common, "trainer.max_iters=8", callbacks=[GlobalRngPerturbation()])
    a = load_ckpt(tmp_path / "full" / "checkpoints" / "iter_00000008.ckpt")
    b = load_ckpt(tmp_path / "split" / "checkpoints" / "iter_00000008.ckpt")
    assert not all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_resume_of_a_finished_run_trains_nothing_and_keeps_metrics_csv(train_in_process, tmp_path):
    first = train_in_process("done", "trainer.max_iters=10", "trainer.ckpt_every=5")
    before = load_ckpt(tmp_path / "done" / "checkpoints" / "iter_00000010.ckpt")
    again = train_in_process("done", "trainer.max_iters=10", "trainer.ckpt_every=5")
    assert first.module.iteration == again.module.iteration == 10
    after = load_ckpt(tmp_path / "done" / "checkpoints" / "iter_00000010.ckpt")
    _assert_same_training_state(before, after)
    # continue to 20: the rows of the first 10 iterations stay in metrics.csv
    train_in_process("done", "trainer.max_iters=20", "trainer.ckpt_every=5")
    with open(tmp_path / "done" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["step"])) for r in rows if r.get("loss/G")] == [5, 10, 15, 20]  # TrainLogger rows
    assert [int(float(r["step"])) for r in rows if r.get("metrics/kl")] == [10, 20]  # final evaluations


# ----------------------------------------------------------------------------- store / IO units
def _fake_ckpt(it: int, metrics: dict | None = None) -> dict:
    return {"ganscale": {"iteration": it}, "ganscale_ops": {"metrics": metrics or {}},
            "state_dict": {"w": torch.full((3,), float(it))}}


def test_atomic_io_writes_marker_after_file_and_readers_ignore_unmarked(tmp_path):
    io = AtomicCheckpointIO()
    d = str(tmp_path)
    io.save_checkpoint(_fake_ckpt(10), store.checkpoint_path(d, 10))
    marker = json.load(open(store.marker_path(store.checkpoint_path(d, 10))))
    assert marker["iteration"] == 10 and marker["bytes"] == os.path.getsize(store.checkpoint_path(d, 10))
    # a later checkpoint whose marker never came (killed between rename and marker) ...
    torch.save(_fake_ckpt(20), store.checkpoint_path(d, 20))
    # ... and a temporary file of a write killed half-way
    with open(os.path.join(d, ".iter_00000030.ckpt.tmp-4242"), "wb") as f:
        f.write(b"\x80\x02partial")
    assert store.list_checkpoints(d) == [store.checkpoint_path(d, 10)]
    assert store.latest_checkpoint(d) == store.checkpoint_path(d, 10)
    with pytest.raises(Exception, match="completion marker"):
        io.load_checkpoint(store.checkpoint_path(d, 20))
    assert torch.equal(io.load_checkpoint(store.checkpoint_path(d, 10))["state_dict"]["w"], torch.full((3,), 10.0))
    removed = store.clean_stale(d)
    assert sorted(os.path.basename(p) for p in removed) == [".iter_00000030.ckpt.tmp-4242", "iter_00000020.ckpt"]
    assert sorted(os.listdir(d)) == ["iter_00000010.ckpt", "iter_00000010.ckpt.complete"]


def test_prune_keeps_last_k_best_and_pinned(tmp_path):
    io, d = AtomicCheckpointIO(), str(tmp_path)
    kl = {10: 0.9, 20: 0.1, 30: 0.5, 40: 0.7, 50: 0.8, 60: 0.6}
    for it, v in kl.items():
        io.save_checkpoint(_fake_ckpt(it, {"kl": v}), store.checkpoint_path(d, it))
    assert store.best_checkpoint(d, "kl", "min") == store.checkpoint_path(d, 20)
    assert store.best_checkpoint(d, "kl", "max") == store.checkpoint_path(d, 10)
    store.prune(d, keep_last=2, best_metric="kl", best_mode="min", keep=(store.checkpoint_path(d, 30),))
    assert [store.iteration_of(p) for p in store.list_checkpoints(d)] == [20, 30, 50, 60]
    assert not any(n.startswith("iter_00000010") or n.startswith("iter_00000040") for n in os.listdir(d))


def test_run_keeps_best_checkpoint_by_metric(train_in_process, tmp_path):
    run = train_in_process("best", "trainer.max_iters=40", "trainer.ckpt_every=10", "trainer.eval_every=10",
                           "checkpoint.keep_last=1", "checkpoint.best_metric=kl", "checkpoint.best_mode=min")
    ckpts = store.list_checkpoints(os.path.join(run.run_dir, "checkpoints"))
    with open(os.path.join(run.run_dir, "metrics.jsonl")) as f:
        evals = {e["iter"]: e["kl"] for e in map(json.loads, f)}
    best_iter = min(evals, key=lambda i: (evals[i], -i))
    assert [store.iteration_of(p) for p in ckpts] == sorted({best_iter, 40})
    assert store.read_marker(ckpts[0])["metrics"]["kl"] == pytest.approx(evals[store.iteration_of(ckpts[0])])


def test_checkpoint_config_errors():
    from ganscale.config import load_config
    from ganscale.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        load_config([], ["checkpoint.keep_last=0", "checkpoint.best_mode=lowest", "checkpoint.best_metric=kl",
                         "trainer.ckpt_every=100", "trainer.eval_every=30"])
    text = str(e.value)
    assert "keep_last=0" in text and "best_mode='lowest'" in text and "eval_every (30) divide" in text
